// `immortal debug` (time travel) and the determinism checker, end to end with real processes, sockets and
// files: an app is run live with `immortal dev`, stopped, then replayed from a checkpoint.
import { createHash } from "node:crypto";
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { freePort } from "../src/ports.js";
import { type Finished, killRunning, runNode } from "./support/run.js";

const here = path.dirname(fileURLToPath(import.meta.url));
const IMMORTAL = path.join(here, "../bin/immortal.mjs");
const AMBROSIA = path.join(here, "../../coordinator/bin/Ambrosia.mjs");
const CHAIN = path.join(here, "fixtures/chain-app.mjs");
const BINDING = path.join(here, "fixtures/external-binding.mjs");

const STEPS = 120;
const ENV = { ...process.env, CHAIN_STEPS: `${STEPS}`, CHAIN_PAD: "30000", IMMORTAL_LOG_LEVEL: "warn" };
const roots: string[] = [];

afterEach(() => killRunning());
afterAll(() => {
  for (const r of roots) rmSync(r, { recursive: true, force: true });
});

function tempDir(): string {
  const d = mkdtempSync(path.join(os.tmpdir(), "immortal-debug-"));
  roots.push(d);
  return d;
}

const immortal = (args: string[], env = ENV, ms = 60_000): Promise<Finished> =>
  runNode([IMMORTAL, ...args], { env, ms, what: `immortal ${args.join(" ")}` });

/** The app run live under `immortal dev` on `data` until both instances are done, then stopped (SIGTERM). */
async function live(data: string, env: NodeJS.ProcessEnv): Promise<Finished> {
  const r = await runNode([IMMORTAL, "dev", CHAIN, "--data", data], {
    env,
    ms: 90_000,
    what: "the live run to finish",
    until: (out) => out.includes(`[sink] SINK DONE ${STEPS}`) && out.includes("[source] SOURCE DONE"),
  });
  expect(r.code, r.stderr.join("\n")).toBe(0);
  return r;
}

/** Every file under `dir` with a hash of its bytes: equal maps mean nothing was written, created or removed. */
function snapshot(dir: string): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (d: string) => {
    for (const name of readdirSync(d).sort()) {
      const full = path.join(d, name);
      if (statSync(full).isDirectory()) walk(full);
      else out.set(path.relative(dir, full), createHash("sha256").update(readFileSync(full)).digest("hex"));
    }
  };
  walk(dir);
  return out;
}

const checkpoints = (dir: string) =>
  readdirSync(dir)
    .filter((n) => /^serverchkpt\d+$/.test(n))
    .map((n) => Number(n.slice("serverchkpt".length)))
    .sort((a, b) => a - b);

describe("immortal debug (time travel) over a finished run", () => {
  let data: string;
  let liveRun: Finished;

  beforeAll(async () => {
    data = tempDir();
    // The sink gets 30 KB per call: with a 1 MB trigger its log rotates, so it has several checkpoints.
    const reg = [
      IMMORTAL,
      "register",
      "--registry",
      path.join(data, "registry"),
      "-l",
      path.join(data, "logs"),
    ];
    for (const [name, lts] of [
      ["sink", "1"],
      ["source", "1024"],
    ] as const) {
      const ports = [await freePort(), await freePort(), await freePort()];
      const r = await runNode(
        [...reg, "-i", name, "-rp", `${ports[0]}`, "-sp", `${ports[1]}`, "-p", `${ports[2]}`, "-lts", lts],
        { env: ENV, ms: 20_000, what: "register" },
      );
      expect(r.code, r.stderr.join("\n")).toBe(0);
    }
    liveRun = await live(data, ENV);
  }, 120_000);

  it("from checkpoint N > 1 prints the live run's output lines for the records after N", async () => {
    const dir = path.join(data, "logs", "sink_0");
    const kept = checkpoints(dir);
    expect(kept.length, `checkpoints ${kept}`).toBeGreaterThanOrEqual(2);
    const n = kept[0]!;
    expect(n).toBeGreaterThan(1);
    const r = await immortal(["debug", CHAIN, "--instance", "sink", "--data", data, "--checkpoint", `${n}`]);
    expect(r.code, r.stderr.join("\n")).toBe(0);
    const liveLines = liveRun.stdout.filter((l) => l.startsWith("[sink] "));
    const replayed = r.stdout.filter((l) => l.startsWith("[sink] "));
    expect(liveLines).toHaveLength(STEPS + 1);
    expect(replayed.length).toBeGreaterThan(0);
    expect(replayed.length).toBeLessThan(liveLines.length); // checkpoint N > 1 skips the first records
    expect(replayed).toEqual(liveLines.slice(liveLines.length - replayed.length));
    expect(r.stderr.join("\n")).toMatch(
      /Replay finished: checkpoint \d+, records \d+–\d+ \(end of the log\)/,
    );
    // Its self-calls were recorded across log rotations and checkpoints, and all are checked.
    expect(r.stderr.join("\n")).toMatch(
      /determinism: [1-9]\d* outputs checked, 0 divergences, 0 without a record/,
    );
  });

  it("--exact (one record at a time) prints the same lines and checks the same outputs", async () => {
    const n = checkpoints(path.join(data, "logs", "sink_0"))[0]!;
    const args = ["debug", CHAIN, "-i", "sink", "--data", data, "-c", `${n}`];
    const [paced, plain] = [await immortal([...args, "--exact"]), await immortal(args)];
    expect(paced.code).toBe(0);
    expect(paced.stdout).toEqual(plain.stdout);
    const summary = (r: Finished) => r.stderr.find((l) => l.startsWith("[debug] Replay finished:"));
    expect(summary(paced)).toBe(summary(plain));
    expect(summary(paced)).toMatch(/0 divergences, 0 without a record/);
  });

  it("leaves every live file byte-identical, and the registry too (read-only)", async () => {
    const before = snapshot(data);
    const r = await immortal([
      "debug",
      CHAIN,
      "--instance",
      "source",
      "--data",
      data,
      "-c",
      "1",
      "--print-state",
    ]);
    expect(r.code, r.stderr.join("\n")).toBe(0);
    expect(r.stdout).toContain("[source] SOURCE DONE");
    expect(snapshot(data)).toEqual(before);
  });

  it("--stop-at S delivers records up to S and prints the state there (tagged JSON)", async () => {
    const s = 7; // record 0 is the first start (init); record k is step k
    const r = await immortal([
      "debug",
      CHAIN,
      "-i",
      "source",
      "--data",
      data,
      "-c",
      "1",
      "--stop-at",
      `${s}`,
      "--print-state",
    ]);
    expect(r.code, r.stderr.join("\n")).toBe(0);
    const steps = r.stdout.filter((l) => l.startsWith("[source] "));
    expect(steps).toEqual(Array.from({ length: s }, (_, i) => `[source] step ${i + 1}`));
    const at = r.stdout.indexOf(`[debug] state of source after record ${s}:`);
    expect(at).toBeGreaterThan(0);
    const state = JSON.parse(r.stdout.slice(at + 1).join("\n"));
    expect(state.step).toBe(s);
    expect(state.sent.$t).toBe("Map");
    expect(state.sent.v).toHaveLength(s);
    expect(state.sent.v[s - 1]).toEqual([s, { $t: "bigint", v: `${s * 1000}` }]);
    expect(r.stderr.join("\n")).toMatch(/stopped at 7/);
  });

  it("a deterministic app (ctx.random) shows no divergence", async () => {
    const r = await immortal(["debug", CHAIN, "-i", "source", "--data", data, "-c", "1"]);
    expect(r.code).toBe(0);
    const err = r.stderr.join("\n");
    expect(err).not.toMatch(/DIVERGENCE/);
    expect(err).toMatch(
      new RegExp(`determinism: ${2 * STEPS} outputs checked, 0 divergences, 0 without a record`),
    );
  });

  it("a checkpoint that does not exist is a clear error listing the ones that do", async () => {
    const r = await immortal(["debug", CHAIN, "-i", "source", "--data", data, "-c", "9"]);
    expect(r.code).toBe(1);
    expect(r.stderr.join("\n")).toMatch(
      /checkpoint 9 does not exist in .*source_0; the checkpoints there are 1\b/,
    );
  });

  it("-tu points at immortal whatif", async () => {
    const r = await immortal(["debug", CHAIN, "-i", "source", "--data", data, "-tu"]);
    expect(r.code).toBe(2);
    expect(r.stderr.join("\n")).toMatch(/immortal whatif/);
  });

  it("Ambrosia DebugInstance replays to an external binding (one could run it under node --inspect)", async () => {
    const [rp, sp] = [await freePort(), await freePort()];
    const logs = path.join(data, "logs");
    const ic = runNode(
      [AMBROSIA, "DebugInstance", "-i=source", `-rp=${rp}`, `-sp=${sp}`, `-l=${logs}`, "-c=1"],
      {
        env: ENV,
        ms: 60_000,
        what: "DebugInstance to finish the replay",
        until: (out) => out.some((l) => l.startsWith("Replay finished:")),
      },
    );
    // With the inspector on (a debugger could attach to it): the binding runs as under `node --inspect`.
    const binding = runNode(["--inspect=127.0.0.1:0", BINDING, "source", `${rp}`, `${sp}`], {
      env: ENV,
      ms: 60_000,
      what: "the binding",
    });
    const [icRun, bindingRun] = await Promise.all([ic, binding]);
    expect(icRun.code, icRun.stderr.join("\n")).toBe(0);
    expect(icRun.stdout.slice(0, 2)).toEqual(["Ready", "Connected!"]);
    expect(icRun.stdout.find((l) => l.startsWith("Replay finished:"))).toMatch(
      new RegExp(
        `checkpoint 1, records 0–${STEPS} \\(end of the log\\).*self ${STEPS}, sink ${STEPS}.*0 divergences`,
      ),
    );
    expect(bindingRun.stdout).toContain("[source] step 1");
    expect(bindingRun.stdout).toContain("[source] SOURCE DONE");
    expect(bindingRun.stdout.at(-1)).toBe("[binding] closed: disconnected");
    expect(bindingRun.stderr.join("\n")).toMatch(/Debugger listening on ws:/);
  });

  it("Ambrosia DebugInstance -tu is a clear FATAL ERROR naming immortal whatif", async () => {
    const r = await runNode([AMBROSIA, "DebugInstance", "-i=source", "-rp=1", "-sp=2", `-l=${data}`, "-tu"], {
      env: ENV,
      ms: 20_000,
      what: "DebugInstance -tu",
    });
    expect(r.code).toBe(1);
    expect(r.stdout.join("\n")).toMatch(/^FATAL ERROR: --testingUpgrade \(-tu\): .*immortal whatif/);
  });
});

describe("the determinism checker", () => {
  it("never reports a false divergence: a deterministic app SIGKILLed twice, its recoveries and a repro run", async () => {
    const data = tempDir();
    const steps = 300;
    const env = { ...ENV, CHAIN_STEPS: `${steps}`, CHAIN_PAD: "2000", IMMORTAL_LOG_LEVEL: "info" };
    const stderr: string[] = [];
    for (const at of [60, 180]) {
      const killed = await runNode([IMMORTAL, "dev", CHAIN, "--data", data], {
        env,
        ms: 60_000,
        what: `step ${at}`,
        signal: "SIGKILL",
        until: (out) => out.includes(`[source] step ${at}`),
      });
      stderr.push(...killed.stderr);
    }
    const last = await runNode([IMMORTAL, "dev", CHAIN, "--data", data], {
      env,
      ms: 60_000,
      what: "the end",
      until: (out) => out.includes(`[sink] SINK DONE ${steps}`) && out.includes("[source] SOURCE DONE"),
    });
    stderr.push(...last.stderr);
    const events = stderr.filter((l) => l.startsWith("{")).map((l) => JSON.parse(l));
    expect(events.filter((e) => e.event === "determinism.divergence")).toEqual([]);
    // The recoveries did check: the regenerated outputs of the killed runs matched their digests.
    const replays = events.filter((e) => e.event === "determinism.replay");
    expect(replays.length).toBeGreaterThanOrEqual(4); // two instances, two recoveries each
    expect(replays.some((e) => e.checkedOutputs > 0)).toBe(true);
    expect(replays.every((e) => e.divergences === 0)).toBe(true);
    for (const instance of ["source", "sink"]) {
      const n = checkpoints(path.join(data, "logs", `${instance}_0`))[0]!;
      const r = await immortal(["debug", CHAIN, "-i", instance, "--data", data, "-c", `${n}`], env);
      expect(r.code).toBe(0);
      expect(r.stderr.join("\n")).toMatch(/outputs checked, 0 divergences/);
    }
  }, 150_000);

  it("catches a handler that puts Math.random() in an outgoing argument, with the input's sequence number", async () => {
    const data = tempDir();
    const env = { ...ENV, CHAIN_RANDOM: "1", CHAIN_PAD: "0", CHAIN_STEPS: "20" };
    const steps = 20;
    await runNode([IMMORTAL, "dev", CHAIN, "--data", data], {
      env,
      ms: 60_000,
      what: "the live run",
      until: (out) => out.includes(`[sink] SINK DONE ${steps}`) && out.includes("[source] SOURCE DONE"),
    });
    const r = await immortal(["debug", CHAIN, "-i", "source", "--data", data, "-c", "1"], env);
    expect(r.code).toBe(0);
    const err = r.stderr.join("\n");
    // Record 0 is init; record 1 is step 1, whose fork to the sink (its fork 1) carries the random number.
    expect(err).toContain(
      "[debug] DIVERGENCE at input record 1: output fork 1 to sink differs from the live run",
    );
    expect(err).toMatch(/\[debug\] {3}first difference at args\+\d+/);
    expect(err).toMatch(/\[debug\] {3}recorded args\+\d+: [0-9a-f ]+/);
    const event = r.stderr
      .filter((l) => l.startsWith("{"))
      .map((l) => JSON.parse(l))
      .find((e) => e.event === "determinism.divergence");
    expect(event).toMatchObject({ kind: "differs", inputSequence: 1, destination: "sink", fork: 1 });
    expect(err).toMatch(new RegExp(`${steps} divergences`));

    // --exact paces the replay one record at a time: the record is then exact, whatever the live run's pace was.
    const exact = await immortal(["debug", CHAIN, "-i", "source", "--data", data, "-c", "1", "--exact"], env);
    expect(exact.code).toBe(0);
    expect(exact.stderr).toContain(
      "[debug]   input record 1, exact (records replayed one at a time); the live run's estimate was 1",
    );

    // Recovery replays too: restarting the live app reports it as a structured event on stderr.
    const again = await runNode([IMMORTAL, "dev", CHAIN, "--data", data], {
      env,
      ms: 60_000,
      what: "the restart",
      until: (out) => out.some((l) => l.includes("running")),
    });
    const recovered = again.stderr
      .filter((l) => l.startsWith("{"))
      .map((l) => JSON.parse(l))
      .filter((e) => e.event === "determinism.divergence");
    expect(recovered.map((e) => [e.instance, e.inputSequence, e.destination, e.fork])).toEqual([
      ["source", 1, "sink", 1],
    ]);
  }, 120_000);
});
