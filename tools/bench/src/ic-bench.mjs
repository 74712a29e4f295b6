// Coordinator benchmark: one coordinator (in this process) driven by a raw binding (a separate process) that
// keeps a window of self-calls in flight. Every call is logged (write + fdatasync) before it is delivered, so
// the delivery rate is the durable logging rate. Figures are printed beside this run's own disk baselines.
//
//   node tools/bench/src/ic-bench.mjs [--quick]
//   IMMORTAL_BENCH_DETERMINISM=0 node tools/bench/src/ic-bench.mjs   # without the determinism digests
//   node tools/bench/src/ic-bench.mjs --determinism-cost [--quick]     # the 64 B workloads, digests off / on, interleaved
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { createRegistration, FolderRegistry, startCoordinator } from "@immortal/coordinator";
import pino from "pino";
import { diskBandwidth, fdatasyncLatency } from "./baselines.mjs";

const here = path.dirname(fileURLToPath(import.meta.url));
const RAW_BINDING = path.join(here, "../../../packages/coordinator/test/support/raw-binding.mjs");
const quick = process.argv.includes("--quick");

async function run({ size, window, total, determinism = process.env.IMMORTAL_BENCH_DETERMINISM !== "0" }) {
  const root = mkdtempSync(path.join(os.tmpdir(), "imm-icbench-"));
  const registry = FolderRegistry.open({ dir: path.join(root, "reg") });
  const logDir = path.join(root, "logs");
  // Below the ephemeral range (32768–60999), so no outgoing connection holds one of these ports.
  const base = 30000 + Math.floor(Math.random() * 2000);
  const ports = { receivePort: base, sendPort: base + 1, icPort: base + 2 };
  await registry.put(createRegistration({ instanceName: "bench", ...ports, logDir }));
  const ic = await startCoordinator({
    instanceName: "bench",
    registry,
    ...ports,
    logDir,
    currentVersion: 0,
    logTriggerSizeMB: 1 << 20, // no checkpoint during the measurement
    // IMMORTAL_BENCH_DETERMINISM=0 turns the determinism checker's recording off, to measure what it costs.
    determinism,
    out: () => {},
    logger: pino({ level: "warn" }),
  });
  try {
    const result = await new Promise((resolve, reject) => {
      const b = spawn(
        "node",
        [RAW_BINDING, JSON.stringify({ name: "bench", ...ports, role: "flood", size, window, total })],
        {
          stdio: ["ignore", "pipe", "inherit"],
        },
      );
      let out = "";
      b.stdout.on("data", (d) => {
        out += d;
        const m = out.match(/RATE (\{.*\})/);
        if (m) {
          b.kill("SIGKILL");
          resolve(JSON.parse(m[1]));
        }
      });
      b.on("exit", (code) => reject(new Error(`binding exited (${code}) before finishing: ${out}`)));
    });
    const c = ic.stats().session.commit;
    return {
      ...result,
      commits: c.records,
      perCommit: c.messages / c.records,
      commitMs: c.totalCommitMs / c.records,
      latencyMs: c.totalLatencyMs / c.records,
    };
  } finally {
    await ic.stop();
    rmSync(root, { recursive: true, force: true });
  }
}

const repeat = async (n, f) => {
  const rs = [];
  for (let i = 0; i < n; i++) rs.push(await f());
  return rs.sort((a, b) => a.perSecond - b.perSecond)[Math.floor(rs.length / 2)];
};

const reps = quick ? 1 : 3;
console.log(
  `machine: ${os.cpus().length} cores, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}`,
);
if (process.argv.includes("--determinism-cost")) {
  // Off and on alternate, so that drift of the shared machine hits both alike; medians of the pairs.
  const pairs = quick ? 3 : 5;
  const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  for (const w of [
    { name: "64 B messages, window 8,192", size: 64, window: 8192, total: quick ? 100_000 : 400_000 },
    { name: "lone 64 B message", size: 64, window: 1, total: quick ? 300 : 1000 },
  ]) {
    const off = [];
    const on = [];
    // The coordinator runs in this process: its CPU time per message moves far less with the machine's load
    // than the rate does.
    const cpu = { off: [], on: [] };
    for (let i = 0; i < pairs; i++) {
      for (const [determinism, rates, cpus] of [
        [false, off, cpu.off],
        [true, on, cpu.on],
      ]) {
        const t = process.cpuUsage();
        const r = await run({ ...w, determinism });
        const u = process.cpuUsage(t);
        rates.push(r.perSecond);
        cpus.push((u.user + u.system) / w.total);
      }
    }
    const [a, b] = [median(off), median(on)];
    const [ca, cb] = [median(cpu.off), median(cpu.on)];
    console.log(
      `${w.name}: digests off ${a.toFixed(0)} msg/s, on ${b.toFixed(0)} msg/s (${((100 * (b - a)) / a).toFixed(1)} %); ` +
        `coordinator CPU ${ca.toFixed(2)} → ${cb.toFixed(2)} µs/message (${((100 * (cb - ca)) / ca).toFixed(1)} %); ` +
        `runs off ${off.map((x) => x.toFixed(0)).join(", ")}; on ${on.map((x) => x.toFixed(0)).join(", ")}`,
    );
  }
  process.exit(0);
}
// The disk is shared and drifts: measure it before and after the workloads and use the median of all runs.
const diskRuns = [await diskBandwidth({ total: quick ? 64 << 20 : 256 << 20, runs: reps })];
const syncRuns = [await fdatasyncLatency({ n: quick ? 50 : 300 })];

const big = await repeat(reps, () => run({ size: 65536, window: 64, total: quick ? 1000 : 6000 }));
const bigMBs = (big.perSecond * 65536) / 1e6;
const small = await repeat(reps, () => run({ size: 64, window: 8192, total: quick ? 50_000 : 600_000 }));
const lone = await repeat(reps, () => run({ size: 64, window: 1, total: quick ? 300 : 3000 }));
const loneMs = 1000 / lone.perSecond;
diskRuns.push(await diskBandwidth({ total: quick ? 64 << 20 : 256 << 20, runs: reps }));
syncRuns.push(await fdatasyncLatency({ n: quick ? 50 : 300 }));
const disk = diskRuns.reduce((a, b) => a + b, 0) / diskRuns.length;
const sync = syncRuns.reduce((a, b) => a + b, 0) / syncRuns.length;
console.log(
  `baseline: sequential write+fdatasync (1 MiB writes) ${diskRuns.map((d) => (d / 1e6).toFixed(0)).join(" / ")} MB/s (before / after), lone 128 B write+fdatasync ${syncRuns.map((x) => x.toFixed(3)).join(" / ")} ms`,
);

const rows = [
  [
    "64 KiB messages",
    `${big.perSecond.toFixed(0)} msg/s`,
    `${bigMBs.toFixed(0)} MB/s = ${((100 * bigMBs * 1e6) / disk).toFixed(0)} % of disk`,
    big.commits,
    big.perCommit.toFixed(1),
    big.commitMs.toFixed(2),
  ],
  [
    "64 B messages",
    `${small.perSecond.toFixed(0)} msg/s`,
    `${((small.perSecond * 64) / 1e6).toFixed(1)} MB/s`,
    small.commits,
    small.perCommit.toFixed(1),
    small.commitMs.toFixed(2),
  ],
  [
    "lone 64 B message",
    `${lone.perSecond.toFixed(0)} msg/s`,
    `commit latency ${lone.latencyMs.toFixed(3)} ms = fdatasync + ${(lone.latencyMs - sync).toFixed(3)} ms; binding round trip ${loneMs.toFixed(3)} ms`,
    lone.commits,
    lone.perCommit.toFixed(1),
    lone.commitMs.toFixed(2),
  ],
];
console.log(
  "\n| workload | rate | throughput / latency | commits | msgs/commit | ms/commit |\n|---|---|---|---|---|---|",
);
for (const r of rows) console.log(`| ${r.join(" | ")} |`);
console.log(
  `\ntargets: 64 KiB ≥ 70 % of disk: ${(bigMBs * 1e6) / disk >= 0.7 ? "met" : "NOT met"}; 64 B ≥ 300,000 msg/s: ${small.perSecond >= 300_000 ? "met" : "NOT met"}; lone message's commit latency within 0.3 ms of fdatasync: ${lone.latencyMs - sync <= 0.3 ? "met" : "NOT met"}`,
);
