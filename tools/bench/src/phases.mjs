// The suite's Immortal phases: PTI throughput, durable round-trip latency, durable operations under concurrency,
// and recovery. Each runs real coordinator and binding processes (logging on, fdatasync per commit) in a fresh
// folder that is removed afterwards.
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { defaultCodec, Immortal } from "@immortal/sdk";
import { Caller, Counter } from "./apps/counter.mjs";
import { Cluster, REPO } from "./cluster.mjs";
import { stopAll } from "./procs.mjs";
import { concurrency, latency } from "./workloads.mjs";

const here = path.dirname(fileURLToPath(import.meta.url));
export const PTI_APP = path.join(REPO, "apps/pti/dist/main.js");
const COUNTER_APP = path.join(here, "apps/counter.mjs");
const MIB = 1024 * 1024;

async function inFreshCluster(prefix, f) {
  const root = mkdtempSync(path.join(os.tmpdir(), prefix));
  try {
    return await f(new Cluster(root), root);
  } finally {
    await stopAll();
    rmSync(root, { recursive: true, force: true });
  }
}

const ROUND = /Round (\d+): size (\d+) B, (\d+) messages, ([\d.]+) MiB\/s, (\d+) msg\/s/;

/** Starts a PTI client and server (four processes) with `env` options and resolves with the server's lines. */
async function runPti(cluster, env, { timeoutMs, serverLts = 1024, nodeArgs = {} }) {
  await cluster.register("server", { logTriggerSizeMB: serverLts });
  await cluster.register("client");
  const serverIc = await cluster.coordinator("server", { nodeArgs: nodeArgs.serverIc ?? [] });
  const clientIc = await cluster.coordinator("client", { nodeArgs: nodeArgs.clientIc ?? [] });
  const server = await cluster.binding("server", PTI_APP, { env, nodeArgs: nodeArgs.server ?? [] });
  await server.primary;
  const client = await cluster.binding("client", PTI_APP, { env, nodeArgs: nodeArgs.client ?? [] });
  await client.primary;
  const done = await server.waitFor(/DONE \{/, timeoutMs, "DONE");
  const result = JSON.parse(done.line.slice(done.line.indexOf("{")));
  return { server, client, serverIc, clientIc, result };
}

/**
 * PTI: rounds from `maxSize` halving to 16 B, `bytesPerRound` each. Per round: messages/s and MiB/s as the live
 * server timed them, and the ratio to the disk baseline (bytes/s).
 */
export async function ptiPhase({
  bytesPerRound,
  maxSize,
  rounds: only,
  fixedSize,
  diskBytesPerSecond,
  timeoutMs,
  nodeArgs,
}) {
  // Halving sizes: one round per size from maxSize down to 16 B. Fixed size: `only` rounds of that size.
  const rounds =
    fixedSize === undefined
      ? Math.min(only ?? Number.POSITIVE_INFINITY, Math.floor(Math.log2(maxSize / 16)) + 1)
      : only;
  return inFreshCluster("imm-pti-", async (cluster) => {
    const env = {
      PTI_ROUNDS: String(rounds),
      PTI_BYTES_PER_ROUND: String(bytesPerRound),
      PTI_MAX_SIZE: String(maxSize),
      ...(fixedSize === undefined ? {} : { PTI_FIXED_SIZE: String(fixedSize) }),
    };
    const { server, result } = await runPti(cluster, env, { timeoutMs, nodeArgs });
    if (result.duplicates !== 0 || result.gaps !== 0)
      throw new Error(`PTI lost its order: ${JSON.stringify(result)}`);
    const rows = [];
    for (const e of server.seen) {
      const m = ROUND.exec(e.line);
      if (!m) continue;
      const size = Number(m[2]);
      const mibs = Number(m[4]);
      rows.push({
        round: Number(m[1]),
        size,
        messages: Number(m[3]),
        messagesPerSecond: Number(m[5]),
        mibPerSecond: mibs,
        ratioToDisk: (mibs * MIB) / diskBytesPerSecond,
      });
    }
    if (rows.length !== rounds) throw new Error(`PTI printed ${rows.length} of ${rounds} rounds`);
    return { rounds: rows, bytesPerRound, result };
  });
}

/** Hosts instance A in this process and B (the counter) as a coordinator + binding pair of processes. */
async function withAB(cluster, f, nodeArgs = {}) {
  const a = await cluster.register("a");
  await cluster.register("b");
  await cluster.coordinator("a", { nodeArgs: nodeArgs.aIc ?? [] });
  await cluster.coordinator("b", { nodeArgs: nodeArgs.bIc ?? [] });
  const b = await cluster.binding("b", COUNTER_APP, { nodeArgs: nodeArgs.b ?? [] });
  await b.primary;
  const node = new Immortal({
    instanceName: "a",
    type: Caller,
    receivePort: a.receivePort,
    sendPort: a.sendPort,
    codec: defaultCodec(),
    logSink: () => {},
  });
  await node.start();
  await node.whenPrimary();
  try {
    let calls = 0;
    let last = 0;
    const op = async (caller) => {
      const total = await node.call(Counter, "b").add(`c${caller}`, 1);
      calls++;
      if (total > last) last = total;
    };
    const out = await f(op);
    // B's count is the number of calls it ran: every call must have run exactly once.
    if (last !== calls) throw new Error(`counter says ${last} calls, the suite made ${calls}`);
    return { ...out, calls };
  } finally {
    await node.close();
  }
}

/** Durable round trips A → B → A, sequential, and durable operations/s at each number of concurrent callers. */
export async function roundTripPhase({ warmup, calls, callers, seconds, nodeArgs }) {
  return inFreshCluster("imm-rt-", (cluster) =>
    withAB(
      cluster,
      async (op) => {
        const lat = await latency(op, { warmup, n: calls, deadlineMs: 180_000 });
        const conc = [];
        for (const c of callers) {
          const before = await commitStats(cluster);
          const r = await concurrency(op, { callers: c, seconds });
          const after = await commitStats(cluster);
          // How well group commit batched: B's log records per operation over this level (the coordinators
          // publish their counters once a second, so this is approximate).
          const ops = r.ops || 1;
          conc.push({
            ...r,
            bCommitsPerOp: (after.b.records - before.b.records) / ops,
            aCommitsPerOp: (after.a.records - before.a.records) / ops,
          });
        }
        return { latency: lat, concurrency: conc };
      },
      nodeArgs,
    ),
  );
}

/** The commit counters the coordinators of a and b publish in their stats.json (fresh: waits a refresh). */
async function commitStats(cluster) {
  await new Promise((r) => setTimeout(r, 1100));
  const read = (name) => {
    try {
      const j = JSON.parse(readFileSync(path.join(cluster.logDir, `${name}_0`, "stats.json"), "utf8"));
      return j.session?.commit ?? { records: 0, messages: 0 };
    } catch {
      return { records: 0, messages: 0 };
    }
  };
  return { a: read("a"), b: read("b") };
}

function dirBytes(dir) {
  let n = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    n += e.isDirectory() ? dirBytes(p) : statSync(p).size;
  }
  return n;
}

/**
 * Recovery: PTI fills the server's log with `logBytes` of payload (fixed-size messages, no checkpoint after the
 * first), then every process is killed with SIGKILL and the server is restarted. The coordinator's own log
 * lines time the replay (from "recovering" to "recovered", which includes the becoming-primary checkpoint);
 * the binding's "is primary" line gives the time from its start.
 */
export async function recoveryPhase({ logBytes, messageSize, timeoutMs, nodeArgs = {} }) {
  return inFreshCluster("imm-rec-", async (cluster) => {
    const env = {
      PTI_ROUNDS: "1",
      PTI_BYTES_PER_ROUND: String(logBytes),
      PTI_FIXED_SIZE: String(messageSize),
    };
    const run = await runPti(cluster, env, { timeoutMs, serverLts: 1 << 20 });
    for (const p of [run.client, run.clientIc, run.server, run.serverIc]) await p.kill();
    const serverLogBytes = dirBytes(path.join(cluster.logDir, "server_0"));
    const ic = await cluster.coordinator("server", { logLevel: "info", nodeArgs: nodeArgs.serverIc ?? [] });
    const binding = await cluster.binding("server", PTI_APP, {
      env,
      nodeArgs: nodeArgs.server ?? [],
      primaryTimeoutMs: timeoutMs,
    });
    const primary = await binding.primary;
    const recovered = await ic.waitFor(/"msg":"recovered"/, 10_000, "recovered");
    const recovering = await ic.waitFor(/"msg":"recovering"/, 1000, "recovering");
    const r = JSON.parse(recovered.line);
    const t0 = JSON.parse(recovering.line).time;
    const replaySeconds = (r.time - t0) / 1000;
    return {
      messageSize,
      payloadBytes: logBytes,
      logBytesOnDisk: serverLogBytes,
      replayedBytes: r.replayedBytes,
      replayedRecords: r.replayedRecords,
      replaySeconds,
      replayMBps: r.replayedBytes / 1e6 / replaySeconds,
      bindingStartToPrimarySeconds: (primary.at - binding.startedAt) / 1000,
    };
  });
}
