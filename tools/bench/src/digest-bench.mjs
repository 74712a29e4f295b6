// The determinism checker's cost on the live path: CPU time per outgoing fork for DigestRecorder.record
// (xxHash64 of the frame, a 64-byte sample, the per-turn encode and write of the digest file), beside the same
// run's baseline: encoding the frame, which the coordinator already does for every outgoing RPC. CPU time
// (process.cpuUsage, all threads) rather than wall time, so other processes on the machine matter less.
//
//   node tools/bench/src/digest-bench.mjs
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { DigestRecorder } from "@immortal/coordinator";
import { encodeMessage } from "@immortal/wire";
import pino from "pino";

const BATCH = 8192; // outputs per event-loop turn, as a busy binding sends them
const turn = () => new Promise((r) => setImmediate(r));

function cpuNs(start) {
  const u = process.cpuUsage(start);
  return (u.user + u.system) * 1000;
}

async function measure(size, total) {
  const args = Buffer.alloc(size, 7);
  const rpc = { type: 0, reserved: 0, methodId: 12345, rpcType: 1, args };
  // Baseline: the frame encoding every outgoing RPC already costs.
  let t = process.cpuUsage();
  const frames = [];
  for (let i = 0; i < total; i++) {
    frames.push(encodeMessage(rpc));
    if (frames.length === BATCH) {
      frames.length = 0;
      await turn();
    }
  }
  const base = cpuNs(t) / total;
  const dir = mkdtempSync(path.join(os.tmpdir(), "imm-digest-bench-"));
  const frame = encodeMessage(rpc);
  const rec = new DigestRecorder(dir, pino({ level: "silent" }));
  t = process.cpuUsage();
  for (let i = 1; i <= total; i++) {
    rec.record("", i, frame, i >> 6, 1);
    if (i % BATCH === 0) await turn();
  }
  await rec.close();
  const cost = cpuNs(t) / total;
  const bytes = rec.stats.digestBytes / total;
  rmSync(dir, { recursive: true, force: true });
  return { size, base, cost, bytes };
}

console.log(
  `machine: ${os.cpus().length} cores, Node ${process.version}, load ${os.loadavg()[0].toFixed(1)}`,
);
console.log("| frame | baseline: encode the frame | record its digest | digest bytes per fork |");
console.log("|---|---|---|---|");
for (const [size, total] of [
  [64, 1_000_000],
  [4096, 200_000],
  [65536, 20_000],
]) {
  const runs = [];
  for (let k = 0; k < 3; k++) runs.push(await measure(size, total));
  runs.sort((a, b) => a.cost - b.cost);
  const m = runs[1];
  console.log(
    `| ${size} B args | ${m.base.toFixed(0)} ns | ${m.cost.toFixed(0)} ns (${(m.cost / m.base).toFixed(2)}× the encode) | ${m.bytes.toFixed(1)} |`,
  );
}
