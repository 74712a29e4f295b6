// The determinism checker on active/active standbys, with real processes (`immortal coordinator -r N` and
// `immortal run -r N` per replica, a plain sink), real sockets and files. The source's handler puts
// Math.random() in the argument of its fork to the sink (CHAIN_RANDOM=1). Pass conditions: while the primary
// runs, a standby that follows the primary's log and digest files reports the first divergence as recovery
// does — the structured `determinism.divergence` event names input record 1 (the first self-call, which sent
// fork 1 to the sink) and carries a diff; its stats count it; a standby started with --strictDeterminism stops
// with FATAL ERROR naming that record; the primary itself never stops.
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { afterEach, describe, expect, it } from "vitest";
import { collectLines, readJson, until } from "../../../tools/testkit/src/processes.js";

const here = path.dirname(fileURLToPath(import.meta.url));
const IMMORTAL = path.join(here, "../bin/immortal.mjs");
const CHAIN = path.join(here, "fixtures/chain-app.mjs");

interface Proc {
  p: ChildProcess;
  stdout: string[];
  stderr: string[];
  exited: boolean;
}

const procs: Proc[] = [];
const cleanup: Array<() => void> = [];
afterEach(() => {
  for (const p of procs.splice(0)) if (!p.exited) p.p.kill("SIGKILL");
  for (const c of cleanup.splice(0)) c();
});

function start(args: string[], env: NodeJS.ProcessEnv): Proc {
  const p = spawn(process.execPath, [IMMORTAL, ...args], { env, stdio: ["ignore", "pipe", "pipe"] });
  const r: Proc = { p, stdout: [], stderr: [], exited: false };
  collectLines(p.stdout!, r.stdout);
  collectLines(p.stderr!, r.stderr);
  p.on("exit", () => {
    r.exited = true;
  });
  procs.push(r);
  return r;
}

/** The structured events of one kind a coordinator logged (pino JSON lines on stderr). */
function events(p: Proc, event: string): Array<Record<string, unknown>> {
  const out: Array<Record<string, unknown>> = [];
  for (const l of p.stderr) {
    if (!l.startsWith("{")) continue;
    try {
      const o = JSON.parse(l) as Record<string, unknown>;
      if (o.event === event) out.push(o);
    } catch {
      // not a JSON line
    }
  }
  return out;
}

describe("determinism checking on active/active standbys", () => {
  it("a standby reports a Math.random() fork argument while the primary runs; --strictDeterminism stops it", async () => {
    const home = mkdtempSync(path.join(os.tmpdir(), "immortal-aa-det-"));
    cleanup.push(() => rmSync(home, { recursive: true, force: true }));
    const leases = existsSync("/dev/shm")
      ? mkdtempSync("/dev/shm/immortal-aa-det-")
      : path.join(home, "leases");
    cleanup.push(() => rmSync(leases, { recursive: true, force: true }));
    // A long chain (the primary is still running when the standbys report), with forks longer than the
    // recorded sample (so the check compares hashes and the diff shows sampled bytes).
    const env = {
      ...process.env,
      IMMORTAL_HOME: home,
      IMMORTAL_LOG_LEVEL: "warn",
      IMMORTAL_LEASE_DIR: leases,
      CHAIN_RANDOM: "1",
      CHAIN_STEPS: "1000000",
      CHAIN_PAD: "200",
    };
    // Below the ephemeral range, in this file's own range (see tools/testkit/README.md).
    const base = 30000 + Math.floor(Math.random() * 270) * 10;
    const p = (k: number) => String(base + k);
    const logs = path.join(home, "logs");
    const reg = (args: string[]) =>
      execFileSync(process.execPath, [IMMORTAL, ...args], { env, stdio: "ignore" });
    reg(["register", "-i", "source", "-rp", p(0), "-sp", p(1), "-p", p(2), "-l", logs, "-aa"]);
    for (const r of [1, 2]) {
      reg([
        "add-replica",
        "-i",
        "source",
        "-r",
        `${r}`,
        "-rp",
        p(3 * r),
        "-sp",
        p(3 * r + 1),
        "-p",
        p(3 * r + 2),
      ]);
    }
    reg(["register", "-i", "sink", "-rp", p(9), "-sp", p(10), "-p", p(11), "-l", logs]);
    start(["coordinator", "-i", "sink"], env);
    start(["run", CHAIN, "-i", "sink"], env);
    const primary = start(["coordinator", "-i", "source", "-r", "0"], env);
    start(["run", CHAIN, "-i", "source", "-r", "0"], env);
    await until(() => primary.stdout.some((l) => l.startsWith("Primary")), "replica 0 to be primary", 60_000);
    const lenient = start(["coordinator", "-i", "source", "-r", "1"], env);
    start(["run", CHAIN, "-i", "source", "-r", "1"], env);
    const strict = start(["coordinator", "-i", "source", "-r", "2", "--strictDeterminism"], env);
    start(["run", CHAIN, "-i", "source", "-r", "2"], env);

    await until(
      () => events(lenient, "determinism.divergence").length > 0,
      "the standby's divergence report",
      60_000,
    );
    const [d] = events(lenient, "determinism.divergence");
    expect(d).toMatchObject({
      kind: "differs",
      inputSequence: 1,
      destination: "sink",
      fork: 1,
      msg: "DIVERGENCE at input record 1: output fork 1 to sink differs from the live run",
    });
    expect((d!.diff as string[]).some((l) => l.startsWith("first difference at args+"))).toBe(true);
    // Its stats (written every second) count this divergence and later ones, as a recovery's do.
    const dir = path.join(logs, "source_0");
    await until(
      () => {
        const det = readJson(path.join(dir, "stats.r1.json"))?.determinism as
          | { divergences?: number }
          | undefined;
        return (det?.divergences ?? 0) >= 1;
      },
      "the standby's stats",
      60_000,
    );
    await until(
      () => strict.stdout.some((l) => l.startsWith("FATAL ERROR")),
      "the strict standby to stop",
      60_000,
    );
    expect(strict.stdout.find((l) => l.startsWith("FATAL ERROR"))).toBe(
      "FATAL ERROR: --strictDeterminism: DIVERGENCE at input record 1: output fork 1 to sink differs from the live run",
    );
    // All this while the primary runs on, unchanged: nothing reported on a live run.
    expect(primary.exited).toBe(false);
    expect(primary.stdout.filter((l) => l.startsWith("Primary"))).toHaveLength(1);
    expect(events(primary, "determinism.divergence")).toHaveLength(0);
  }, 120_000);
});
