// Active/active failover benchmark. A PTI server with two replicas (each `immortal coordinator -r N` plus its
// `immortal run -r N` binding, all real processes sharing one log folder) receives a continuous PTI stream
// from a client. The primary replica (coordinator and binding) is SIGKILLed several times; each time we time
//   - promoted: SIGKILL → the standby's coordinator prints `Primary` (lease taken, log finished, BecomingPrimary);
//   - committing: SIGKILL → the first bytes the new primary commits to its new log file (the client's link
//     found it and its traffic is being logged again),
// then restart the killed replica as the new standby and wait until it has caught up before the next kill.
// Baselines from the same run: the lease's ttl (the wait a standby must allow a silent primary) and the time
// to start a bare `node` process (the floor of any restart-based recovery, which failover avoids).
//
//   node tools/bench/src/failover-bench.mjs [--kills 5 | --quick] [--json]
import { execFileSync, spawn } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const IMMORTAL = path.join(here, "../../../packages/cli/bin/immortal.mjs");
const PTI = path.join(here, "../../../apps/pti/dist/main.js");
const args = process.argv.slice(2);
const json = args.includes("--json");
// --quick (the suite's CI smoke run): one kill, only to show the benchmark works end to end.
const kills = args.includes("--kills")
  ? Number(args[args.indexOf("--kills") + 1]) || 5
  : args.includes("--quick")
    ? 1
    : 5;
const log = (line) => (json ? process.stderr : process.stdout).write(`${line}\n`);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function until(pred, what, ms = 30_000) {
  const deadline = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > deadline) {
      const files = readdirSync(dir).map((f) => `${f}:${statSync(path.join(dir, f)).size}`);
      throw new Error(`timed out waiting for ${what} (log folder: ${files.join(" ")})`);
    }
    await sleep(2);
  }
}

const root = mkdtempSync(path.join(os.tmpdir(), "imm-failover-"));
const home = path.join(root, "home");
const logs = path.join(root, "logs");
const dir = path.join(logs, "server_0");
// The lease files in memory-backed /dev/shm as by default, in a folder of this run's own (removed at the end).
const leases = existsSync("/dev/shm") ? mkdtempSync("/dev/shm/imm-failover-") : path.join(root, "leases");
const env = {
  ...process.env,
  IMMORTAL_LEASE_DIR: leases,
  IMMORTAL_HOME: home,
  IMMORTAL_LOG_LEVEL: "warn",
  // A stream that outlasts the benchmark; small messages keep the log growing steadily.
  PTI_ROUNDS: "1000",
  PTI_BYTES_PER_ROUND: String(64 * 1024 * 1024),
  PTI_FIXED_SIZE: "1024",
  PTI_STEP_BYTES: "65536",
};
// Below the ephemeral range (32768+), so no outgoing connection can hold one of these.
const base = 12000 + Math.floor(Math.random() * 800) * 10;
const p = (k) => String(base + k);
const cli = (...a) => execFileSync(process.execPath, [IMMORTAL, ...a], { env, stdio: "ignore" });
cli("register", "-i", "server", "-rp", p(0), "-sp", p(1), "-p", p(2), "-l", logs, "-aa");
cli("add-replica", "-i", "server", "-r", "1", "-rp", p(10), "-sp", p(11), "-p", p(12));
cli("register", "-i", "client", "-rp", p(20), "-sp", p(21), "-p", p(22), "-l", logs);

const procs = new Set();
function start(argv, onLine) {
  const child = spawn(process.execPath, [IMMORTAL, ...argv], { env, stdio: ["ignore", "pipe", "ignore"] });
  procs.add(child);
  child.on("exit", () => procs.delete(child));
  let buf = "";
  child.stdout.on("data", (d) => {
    buf += d;
    const parts = buf.split("\n");
    buf = parts.pop();
    for (const l of parts) onLine?.(l);
  });
  return child;
}

/** One replica: its coordinator and binding, and when its coordinator last said `Primary`. */
function replica(n) {
  const r = { n, primaryAt: 0, ic: undefined, lb: undefined };
  r.ic = start(["coordinator", "-i", "server", "-r", String(n)], (l) => {
    if (l.startsWith("Primary")) r.primaryAt = performance.now();
  });
  r.lb = start(["run", PTI, "-i", "server", "-r", String(n)]);
  return r;
}

function stats(file) {
  try {
    return JSON.parse(readFileSync(file, "utf8")).session;
  } catch {
    return undefined;
  }
}

const logNumbers = () =>
  readdirSync(dir)
    .map((f) => /^serverlog(\d+)$/.exec(f)?.[1])
    .filter(Boolean)
    .map(Number);

function nodeStartMs() {
  const t = performance.now();
  execFileSync(process.execPath, ["-e", "0"]);
  return performance.now() - t;
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

const samples = [];
try {
  let replicas = [replica(0)];
  await sleep(300);
  replicas.push(replica(1));
  start(["coordinator", "-i", "client"]);
  start(["run", PTI, "-i", "client"]);
  await until(() => replicas.some((r) => r.primaryAt > 0), "a first primary", 60_000);
  for (let k = 0; k < kills; k++) {
    // The replica that announced itself last is primary (a lease can also move on its own, e.g. a stall).
    const primary = replicas.reduce((a, b) => (b.primaryAt > a.primaryAt ? b : a));
    const standby = replicas.find((r) => r !== primary);
    // The standby must be current (it replays continuously), and the client streaming.
    await until(() => {
      const a = stats(path.join(dir, `stats.r${standby.n}.json`));
      const b = stats(path.join(dir, "stats.json"));
      return (
        a?.replayedThrough !== undefined && b?.nextSequence > 0 && a.replayedThrough + 10 >= b.nextSequence
      );
    }, `replica ${standby.n} to catch up`);
    await sleep(500);
    const newest = Math.max(...logNumbers());
    const t0 = performance.now();
    primary.ic.kill("SIGKILL");
    primary.lb.kill("SIGKILL");
    let committed = 0;
    await until(() => {
      const fresh = logNumbers().filter((n) => n > newest);
      if (fresh.some((n) => statSync(path.join(dir, `serverlog${n}`)).size > 0))
        committed = performance.now();
      return committed > 0 && standby.primaryAt > t0;
    }, "the standby to take over and commit");
    samples.push({ kill: k + 1, promotedMs: standby.primaryAt - t0, committingMs: committed - t0 });
    log(
      `kill ${k + 1}: promoted after ${(standby.primaryAt - t0).toFixed(0)} ms, committing after ${(committed - t0).toFixed(0)} ms`,
    );
    // The killed replica comes back as the new standby.
    await sleep(100);
    replicas = [standby, replica(primary.n)];
  }
} finally {
  for (const c of procs) c.kill("SIGKILL");
  await sleep(200);
  rmSync(root, { recursive: true, force: true });
  rmSync(leases, { recursive: true, force: true });
}

const ttlMs = Number(process.env.IMMORTAL_LEASE_MS ?? 300);
const startMs = median([nodeStartMs(), nodeStartMs(), nodeStartMs()]);
const summary = {
  kills: samples.length,
  promotedMs: {
    median: median(samples.map((s) => s.promotedMs)),
    max: Math.max(...samples.map((s) => s.promotedMs)),
  },
  committingMs: {
    median: median(samples.map((s) => s.committingMs)),
    max: Math.max(...samples.map((s) => s.committingMs)),
  },
  baselines: { leaseTtlMs: ttlMs, nodeProcessStartMs: startMs },
  samples,
};
if (json) {
  process.stdout.write(`${JSON.stringify(summary)}\n`);
} else {
  const f = (v) => `${v.toFixed(0)} ms`.padStart(8);
  log("");
  log(`failover, ${samples.length} SIGKILLs of the primary (2 replicas, PTI stream of 1 KiB messages)`);
  log("                          median      max");
  log(`SIGKILL → promoted     ${f(summary.promotedMs.median)} ${f(summary.promotedMs.max)}`);
  log(`SIGKILL → committing   ${f(summary.committingMs.median)} ${f(summary.committingMs.max)}`);
  log(`baseline: lease ttl ${ttlMs} ms; a bare node process starts in ${startMs.toFixed(0)} ms (same run)`);
}
