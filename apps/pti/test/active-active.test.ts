// Active/active PTI with real processes: the server has replicas (each an `immortal coordinator -r N` plus an
// `immortal run -r N` binding), sharing one log folder; the client is a plain instance. Pass conditions:
// - fault scenario 14: SIGKILL the primary replica (coordinator and binding) twice mid-run: a standby takes over
//   each time and the run completes with exact bytes, no duplicates, no gaps (order), one DONE;
// - two replicas started at once elect exactly one primary; a standby SIGKILLed mid-run loses nothing and,
//   restarted, catches up with the primary's log;
// - a primary SIGSTOPped past its lease is replaced; once resumed it stops itself with FATAL ERROR naming the
//   lease, and the log it wrote holds not one byte more than the seal the new primary put on it, nor its
//   digest files one byte more than when it was stopped (digest writes are fenced by the lease too);
// - determinism checker: standbys check the forks they regenerate against the primary's digests, before and
//   after failovers, and a deterministic app shows no divergence (packages/cli/test/aa-determinism.test.ts
//   shows that a Math.random() argument is reported).
import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { afterEach, describe, expect, it } from "vitest";
import {
  prng,
  readJson,
  type Supervised,
  stopAll,
  supervise,
  until,
} from "../../../tools/testkit/src/processes.js";

const here = path.dirname(fileURLToPath(import.meta.url));
const IMMORTAL = path.join(here, "../../../packages/cli/bin/immortal.mjs");
const ENTRY = path.join(here, "../dist/main.js");
const SEED = Number(process.env.IMMORTAL_TEST_SEED ?? Date.now() % 100_000);
const MIB = 1024 * 1024;
const DONE = "[server] DONE {";

const cleanup: Array<() => void> = [];
let current: Setup | undefined;
afterEach((ctx) => {
  if (ctx.task.result?.state === "fail" && current !== undefined) {
    // What each process said, for the failure report.
    console.log(current.lines.slice(-20).join("\n"));
    for (const r of current.replicas) {
      console.log(`replica ${r.n}:`, r.icLines.slice(-10).join("\n"));
      const err = path.join(current.home, `ic${r.n}.err`);
      if (existsSync(err)) console.log(readFileSync(err, "utf8").split("\n").slice(-12).join("\n"));
    }
  }
  current = undefined;
  stopAll();
  for (const c of cleanup.splice(0)) c();
});

interface Replica {
  n: number;
  ic: Supervised;
  lb: Supervised;
  icLines: string[];
}

interface Setup {
  home: string;
  dir: string;
  lines: string[];
  replicas: Replica[];
  env: NodeJS.ProcessEnv;
}

function register(env: NodeJS.ProcessEnv, args: string[]): void {
  execFileSync(process.execPath, [IMMORTAL, ...args], { env, stdio: "ignore" });
}

/**
 * Registers server and client, `aa` active/active with `replicas` replicas and the other plain, and starts
 * every process.
 */
function start(
  replicas: number,
  pti: Record<string, string>,
  aa: "server" | "client" = "server",
  rotate = true,
): Setup {
  const plain = aa === "server" ? "client" : "server";
  const home = mkdtempSync(path.join(os.tmpdir(), "pti-aa-"));
  cleanup.push(() => rmSync(home, { recursive: true, force: true }));
  // Lease files in memory-backed /dev/shm (the default) but in a folder of this test's own, removed after it.
  const leases = existsSync("/dev/shm") ? mkdtempSync("/dev/shm/pti-aa-") : path.join(home, "leases");
  cleanup.push(() => rmSync(leases, { recursive: true, force: true }));
  const env = {
    ...process.env,
    ...pti,
    IMMORTAL_HOME: home,
    IMMORTAL_LOG_LEVEL: "warn",
    IMMORTAL_LEASE_DIR: leases,
  };
  // Below the ephemeral range (32768+), so no outgoing connection of another test can hold one of these, in
  // this file's own range (see tools/testkit/README.md).
  const base = 21000 + Math.floor(Math.random() * 290) * 10;
  const logs = path.join(home, "logs");
  const p = (k: number) => String(base + k);
  // A checkpoint every MB: standbys follow log rotations, retention and new checkpoints all through the run.
  const aaArgs = ["-l", logs, "-aa", ...(rotate ? ["-lts", "1"] : [])];
  register(env, ["register", "-i", aa, "-rp", p(0), "-sp", p(1), "-p", p(2), ...aaArgs]);
  for (let r = 1; r < replicas; r++) {
    const [rp, sp, ic] = [p(10 * r), p(10 * r + 1), p(10 * r + 2)];
    register(env, ["add-replica", "-i", aa, "-r", String(r), "-rp", rp, "-sp", sp, "-p", ic]);
  }
  register(env, ["register", "-i", plain, "-rp", p(90), "-sp", p(91), "-p", p(92), "-l", logs]);
  const lines: string[] = [];
  const rs: Replica[] = [];
  for (let r = 0; r < replicas; r++) {
    const icLines: string[] = [];
    rs.push({
      n: r,
      icLines,
      ic: supervise(
        [IMMORTAL, "coordinator", "-i", aa, "-r", String(r)],
        env,
        icLines,
        path.join(home, `ic${r}.err`),
      ),
      lb: supervise([IMMORTAL, "run", ENTRY, "-i", aa, "-r", String(r)], env, lines),
    });
  }
  supervise([IMMORTAL, "coordinator", "-i", plain], env, []);
  supervise([IMMORTAL, "run", ENTRY, "-i", plain], env, lines);
  current = { home, dir: path.join(logs, `${aa}_0`), lines, replicas: rs, env };
  return current;
}

/** SIGKILLs a replica's coordinator and binding; the mark keeps `isPrimary` from trusting the dead one's lines. */
function killReplica(r: Replica): void {
  r.icLines.push(KILLED);
  r.ic.kill();
  r.lb.kill();
}
const KILLED = "(killed by the test)";

/** Whether the replica's current coordinator process (the one after its last `Ready`) is primary. */
function isPrimary(r: Replica): boolean {
  const killed = r.icLines.lastIndexOf(KILLED);
  const ready = r.icLines.lastIndexOf("Ready");
  if (killed > ready) return false;
  return ready >= 0 && lastPrimaryLine(r) > ready;
}

/** Each replica's line count now: `primary(s, marks)` then waits for a primary that announced itself since. */
const mark = (s: Setup) => s.replicas.map((r) => r.icLines.length);

function lastPrimaryLine(r: Replica): number {
  let at = -1;
  r.icLines.forEach((l, i) => {
    if (l.startsWith("Primary")) at = i;
  });
  return at;
}

async function primary(s: Setup, since?: number[]): Promise<Replica> {
  let found: Replica | undefined;
  await until(
    () => {
      found = s.replicas.find((r) => isPrimary(r) && lastPrimaryLine(r) >= (since?.[r.n] ?? 0));
      return found !== undefined;
    },
    "a primary",
    30_000,
  );
  return found!;
}

/** The lease epochs of every `Primary` line, all replicas. */
function primaryEpochs(s: Setup): number[] {
  const out: number[] = [];
  for (const r of s.replicas) {
    for (const l of r.icLines) {
      const m = /^Primary \(replica \d+, lease epoch (\d+)\)/.exec(l);
      if (m) out.push(Number(m[1]));
    }
  }
  return out.sort((a, b) => a - b);
}

/** One primary per epoch, ever: no two `Primary` lines share an epoch. */
function expectOnePrimaryPerEpoch(s: Setup): void {
  const epochs = primaryEpochs(s);
  expect(new Set(epochs).size).toBe(epochs.length);
}

/** Waits until replica `r` (a standby) has replayed the primary's whole log. */
async function caughtUp(s: Setup, r: Replica): Promise<void> {
  await until(
    () => {
      const mine = readJson(path.join(s.dir, `stats.r${r.n}.json`))?.session as
        | { replayedThrough?: number; phase?: string }
        | undefined;
      const theirs = readJson(path.join(s.dir, "stats.json"))?.session as
        | { nextSequence?: number }
        | undefined;
      return (
        mine?.phase === "replaying" &&
        mine.replayedThrough !== undefined &&
        theirs?.nextSequence !== undefined &&
        mine.replayedThrough + 1 === theirs.nextSequence
      );
    },
    `replica ${r.n} to catch up`,
    30_000,
  );
}

function done(lines: string[]): { bytes: number; duplicates: number; gaps: number } {
  const all = lines.filter((l) => l.startsWith(DONE)).map((l) => JSON.parse(l.slice(l.indexOf("{"))));
  expect(all.length).toBe(1);
  return all[0];
}

/** A replica's determinism counters (its current process's stats file). */
function determinism(s: Setup, r: Replica): { checkedOutputs?: number; divergences?: number } | undefined {
  return readJson(path.join(s.dir, `stats.r${r.n}.json`))?.determinism as
    | { checkedOutputs?: number; divergences?: number }
    | undefined;
}

/** Every divergence any replica reported (events in its stderr, divergences in its stats). */
function divergences(s: Setup): string[] {
  const out: string[] = [];
  for (const r of s.replicas) {
    const err = path.join(s.home, `ic${r.n}.err`);
    if (existsSync(err)) {
      for (const l of readFileSync(err, "utf8").split("\n"))
        if (l.includes('"determinism.divergence"')) out.push(`replica ${r.n}: ${l}`);
    }
    const n = determinism(s, r)?.divergences ?? 0;
    if (n > 0) out.push(`replica ${r.n}: ${n} divergences in its stats`);
  }
  return out;
}

/** Sizes of the digest files numbered up to `n`. */
function digestSizes(dir: string, n: number): Map<string, number> {
  const out = new Map<string, number>();
  for (const f of readdirSync(dir)) {
    const m = /^serverdigest(\d+)$/.exec(f);
    if (m && Number(m[1]) <= n) out.set(f, statSync(path.join(dir, f)).size);
  }
  return out;
}

const PTI = {
  PTI_ROUNDS: "5",
  PTI_BYTES_PER_ROUND: `${2 * MIB}`,
  PTI_MAX_SIZE: "1024",
  PTI_STEP_BYTES: "16384",
};

/**
 * From round 0 on, SIGKILLs the current primary twice at seeded moments (each time checking the run is not yet
 * done and waiting for a standby to take over), then waits for DONE.
 */
async function killPrimaryTwiceMidRun(s: Setup, rnd: () => number): Promise<void> {
  await until(() => s.lines.some((l) => l.startsWith("[server] Round 0")), "round 0", 60_000);
  for (let k = 0; k < 2; k++) {
    const p = await primary(s);
    await new Promise((r) => setTimeout(r, 100 + rnd() * 400));
    expect(
      s.lines.some((l) => l.startsWith(DONE)),
      "finished before the kill: make the run longer",
    ).toBe(false);
    const before = mark(s);
    killReplica(p);
    await primary(s, before);
  }
  await until(() => s.lines.some((l) => l.startsWith(DONE)), "DONE", 90_000);
}

describe(`active/active PTI server (seed ${SEED})`, () => {
  it("fault scenario 14: the primary is SIGKILLed twice mid-run; a standby takes over; exact counts", async () => {
    const s = start(2, PTI);
    await killPrimaryTwiceMidRun(s, prng(SEED));
    expect(done(s.lines)).toMatchObject({ bytes: 5 * 2 * MIB, duplicates: 0, gaps: 0 });
    // At least the two takeovers (a primary may also have stepped down on its own, e.g. a disk stall past
    // its lease: that is safe, and shows as one more epoch).
    expect(primaryEpochs(s).length).toBeGreaterThanOrEqual(3);
    expectOnePrimaryPerEpoch(s);
  }, 150_000);

  it("an active/active client (the sender) killed twice mid-run: its standby resends from rebuilt output buffers", async () => {
    const s = start(2, { ...PTI, PTI_ECHO: "1" }, "client");
    await killPrimaryTwiceMidRun(s, prng(SEED + 7));
    expect(done(s.lines)).toMatchObject({ bytes: 5 * 2 * MIB, duplicates: 0, gaps: 0 });
    // Echo: every payload came back to the client, in order, once (counted in the client's replicated state).
    await until(() => s.lines.some((l) => l.startsWith("[client] ECHO DONE {")), "ECHO DONE", 90_000);
    const echo = s.lines.filter((l) => l.startsWith("[client] ECHO DONE {"));
    expect(echo.length).toBe(1);
    const e = JSON.parse(echo[0]!.slice(echo[0]!.indexOf("{")));
    expect(e).toMatchObject({ outOfOrder: 0, echoes: e.sent, lastEcho: e.sent });
    expectOnePrimaryPerEpoch(s);
    // A deterministic app: standbys check the forks they regenerate against the primaries' digests (before and
    // after each failover: a promoted standby records in its own log's digest file) and find no divergence.
    await until(
      () => s.replicas.some((r) => !isPrimary(r) && (determinism(s, r)?.checkedOutputs ?? 0) > 0),
      "a standby to check outputs",
      30_000,
    );
    expect(divergences(s)).toEqual([]);
  }, 150_000);

  it("replicas started at once elect one primary; a standby killed mid-run catches up when restarted", async () => {
    const s = start(3, PTI);
    const p = await primary(s);
    await until(() => s.lines.some((l) => l.startsWith("[server] Round 1")), "round 1", 60_000);
    const standby = s.replicas.find((r) => r !== p)!;
    killReplica(standby);
    await until(() => s.lines.some((l) => l.startsWith(DONE)), "DONE", 90_000);
    expect(done(s.lines)).toMatchObject({ bytes: 5 * 2 * MIB, duplicates: 0, gaps: 0 });
    // Every standby, the restarted one too, reaches the end of the primary's log.
    for (const r of s.replicas) if (!isPrimary(r)) await caughtUp(s, r);
    expect(standby.ic.starts()).toBeGreaterThanOrEqual(2);
    // Started together: never two primaries in one epoch.
    expectOnePrimaryPerEpoch(s);
  }, 150_000);

  it("a primary stopped past its lease is deposed, never writes again, and stops itself", async () => {
    // No rotation here: the log the deposed primary wrote must stay on disk to be checked. Echo: the server
    // sends forks, so its primary records digests right up to the stop.
    const s = start(2, { ...PTI, PTI_ECHO: "1" }, "server", false);
    const old = await primary(s);
    await until(() => s.lines.some((l) => l.startsWith("[server] Round 1")), "round 1", 60_000);
    const before = mark(s);
    expect(old.ic.signal("SIGSTOP")).toBe(true);
    let resumed = false;
    cleanup.unshift(() => {
      if (!resumed) old.ic.signal("SIGCONT");
    });
    const next = await primary(s, before);
    expect(next).not.toBe(old);
    // The new primary sealed the newest log the old one wrote before it opened its own.
    const seals = readdirSync(s.dir).filter((f) => f.endsWith(".sealed"));
    expect(seals.length).toBeGreaterThan(0);
    const sealed = seals.map((f) => Number(/serverlog(\d+)\.sealed/.exec(f)![1])).sort((a, b) => b - a)[0]!;
    const seal = Number(readFileSync(path.join(s.dir, `serverlog${sealed}.sealed`), "utf8"));
    const oldLog = path.join(s.dir, `serverlog${sealed}`);
    expect(statSync(oldLog).size).toBe(seal);
    const counted = readFileSync(oldLog);
    // The old primary's digest files (those of the logs it wrote; the new primary writes only later ones).
    const digests = digestSizes(s.dir, sealed);
    expect([...digests.values()].some((size) => size > 0)).toBe(true);
    old.ic.signal("SIGCONT");
    resumed = true;
    await until(
      () => old.icLines.some((l) => l.startsWith("FATAL ERROR")),
      "the deposed primary to stop",
      30_000,
    );
    const fatal = old.icLines.find((l) => l.startsWith("FATAL ERROR"))!;
    expect(fatal).toMatch(/lease/);
    await until(() => s.lines.some((l) => l.startsWith(DONE)), "DONE", 90_000);
    expect(done(s.lines)).toMatchObject({ bytes: 5 * 2 * MIB, duplicates: 0, gaps: 0 });
    // What the new primary read and sealed is unchanged. A write the old primary had already issued when it
    // was stopped may still land past the seal (the kernel carries it out after SIGCONT); its fdatasync fence
    // then fails, so it is never acknowledged, and nothing reads past a seal: the restarted old replica
    // replays the shared log to the primary's last record.
    expect(readFileSync(oldLog).subarray(0, seal).equals(counted)).toBe(true);
    expect(existsSync(path.join(s.dir, `serverlog${sealed + 1}`))).toBe(true);
    // Resumed, the deposed primary had digests left to write (recorded within 100 ms of the stop) and the
    // lease's fencing stopped every write: not one digest byte more, no new digest file.
    expect(digestSizes(s.dir, sealed)).toEqual(digests);
    // The new primary records in its own log's digest file.
    await until(
      () =>
        [...digestSizes(s.dir, Number.MAX_SAFE_INTEGER)].some(
          ([f, size]) => Number(f.slice(12)) > sealed && size > 0,
        ),
      "the new primary's digests",
      30_000,
    );
    // (Normally the old replica is that standby; on a starved machine the lease may have moved once more.)
    for (const r of s.replicas) if (!isPrimary(r)) await caughtUp(s, r);
    expectOnePrimaryPerEpoch(s);
    expect(divergences(s)).toEqual([]);
  }, 150_000);
});
