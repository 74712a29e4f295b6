// Live upgrade, what-if upgrade testing and downgrade with real processes: `immortal coordinator` and
// `immortal run` for each instance, real sockets and files, SIGKILL. The app (fixtures/upgrade) is a sender that
// calls counter.add(1..N) one at a time and checks every reply equals k; the counter's state changes shape
// between versions. Pass conditions: every reply exact (no duplicate, no gap) across the upgrade, the new
// version's behaviour visible from the upgrade point on, crashes at the upgrade's two critical steps recovered,
// what-if reports planted divergences (and none for a compatible version) without changing the live folder.
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { afterEach, describe, expect, it } from "vitest";
import { freePort } from "../src/ports.js";

const here = path.dirname(fileURLToPath(import.meta.url));
const IMMORTAL = path.join(here, "../bin/immortal.mjs");
const FIX = path.join(here, "fixtures/upgrade");
const COUNT = 60;
const PAUSE = 25;

/** Polls `pred` every 20 ms; throws after `ms` with what it was waiting for (no timed assertion). */
async function until(pred: () => boolean, what: string, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

interface Proc {
  lines: string[];
  child: ChildProcess;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

const procs: Proc[] = [];
const cleanup: Array<() => void> = [];
afterEach(() => {
  for (const p of procs.splice(0)) p.child.kill("SIGKILL");
  for (const c of cleanup.splice(0)) c();
});

function start(args: string[], env: NodeJS.ProcessEnv): Proc {
  const child = spawn(process.execPath, [IMMORTAL, ...args], { env, stdio: ["ignore", "pipe", "pipe"] });
  const lines: string[] = [];
  let buf = "";
  child.stdout!.on("data", (d: Buffer) => {
    buf += d;
    const parts = buf.split("\n");
    buf = parts.pop()!;
    lines.push(...parts);
  });
  child.stderr!.resume();
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on("exit", (code, signal) => resolve({ code, signal })),
  );
  const p = { lines, child, exited };
  procs.push(p);
  return p;
}

function immortal(args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [IMMORTAL, ...args], { env }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof err.code === "number" ? err.code : 1;
      resolve({ code, out: `${stdout}${stderr}` });
    });
  });
}

/** Every file's name, size and SHA-256 under `dir`: equal snapshots mean byte-identical folders. */
function snapshot(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of readdirSync(dir).sort()) {
    const full = path.join(dir, name);
    const st = statSync(full);
    out[name] = st.isFile()
      ? `${st.size}:${createHash("sha256").update(readFileSync(full)).digest("hex")}`
      : "dir";
  }
  return out;
}

/** One test's world: a registry, a log folder, two registered instances with their own ports. */
/** Distinct ports the OS reports free (fixed ranges collide with other tests' ephemeral ports). */
async function freePorts(n: number): Promise<number[]> {
  const ports: number[] = [];
  for (let i = 0; i < n; i++) ports.push(await freePort());
  return ports;
}

/** Waits for a coordinator's `Ready`; a `FATAL` line (a port taken meanwhile, say) fails at once, with it. */
async function ready(p: Proc): Promise<void> {
  await until(() => p.lines.includes("Ready") || p.lines.some((l) => l.startsWith("FATAL")), "Ready", 60_000);
  expect(p.lines.filter((l) => l.startsWith("FATAL"))).toEqual([]);
}

async function world(name: string, counterVersion = 0) {
  const home = mkdtempSync(path.join(os.tmpdir(), `imm-upgrade-${name}-`));
  cleanup.push(() => rmSync(home, { recursive: true, force: true }));
  const logs = path.join(home, "logs");
  const resume = path.join(home, "resume");
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    IMMORTAL_HOME: path.join(home, "registry"),
    IMMORTAL_LOG_LEVEL: "warn",
    COUNT: String(COUNT),
    PAUSE: String(PAUSE),
    RESUME_FILE: resume,
  };
  const free = await freePorts(6);
  const ports = { sender: free.slice(0, 3), counter: free.slice(3, 6) };
  const register = (instance: "sender" | "counter", versions: string[]) => {
    const [rp, sp, ic] = ports[instance].map(String) as [string, string, string];
    return immortal(
      ["register", "-i", instance, "-rp", rp, "-sp", sp, "-p", ic, "-l", logs].concat(versions),
      env,
    );
  };
  const reg = () =>
    JSON.parse(readFileSync(path.join(home, "registry", "instances", "counter.json"), "utf8")) as {
      currentVersion: number;
      upgradeVersion: number;
    };
  return {
    home,
    logs,
    env,
    register,
    reg,
    resume: () => writeFileSync(resume, "go"),
    coordinator: (instance: string, extra: NodeJS.ProcessEnv = {}) =>
      start(["coordinator", "-i", instance], { ...env, ...extra }),
    run: (instance: string, entry: string) =>
      start(["run", path.join(FIX, entry), "--instance", instance], env),
    async setUp(entry: string) {
      expect((await register("sender", [])).code).toBe(0);
      expect((await register("counter", ["-cv", String(counterVersion)])).code).toBe(0);
      const sc = this.coordinator("sender");
      const cc = this.coordinator("counter");
      await ready(sc);
      await ready(cc);
      const sender = this.run("sender", entry);
      const counter = this.run("counter", entry);
      await until(() => sender.lines.includes(`[sender] paused at ${PAUSE}`), "the sender to pause", 60_000);
      return { sender, counter: [cc, counter] };
    },
  };
}

async function kill(ps: Proc[]): Promise<void> {
  for (const p of ps) p.child.kill("SIGKILL");
  await Promise.all(ps.map((p) => p.exited));
}

/** Exactly once: the sender saw reply k for every k in order, once each, and finished. */
function checkSender(lines: string[]): void {
  const got = lines.filter((l) => l.startsWith("[sender] got "));
  expect(got).toEqual(Array.from({ length: COUNT }, (_, i) => `[sender] got ${i + 1} -> ${i + 1}`));
  expect(lines).toContain("[sender] DONE mismatches=0");
}

/** Lets the paused sender go on (while the counter upgrades) and checks the run once it has finished. */
async function finish(w: { resume: () => void }, sender: Proc): Promise<void> {
  w.resume();
  await until(() => sender.lines.some((l) => l.startsWith("[sender] DONE")), "the sender to finish", 90_000);
  checkSender(sender.lines);
}

describe("live upgrade and what-if (real processes)", () => {
  it("fault scenario 15: what-if of version 1 on the version-0 log, then a live upgrade 0 → 1 mid-run", async () => {
    const w = await world("s15");
    const { sender, counter } = await w.setUp("counter-v1.mjs");
    await kill(counter);
    const live = path.join(w.logs, "counter_0");
    const before = snapshot(live);

    // What-if, read-only: a compatible version 1, then two with planted divergences.
    const ok = await immortal(["whatif", path.join(FIX, "counter-v1.mjs"), "--instance", "counter"], w.env);
    expect(ok.out).toMatch(/counter 0 → 1: checkpoint 1, \d+ records .*: no divergences/);
    expect(ok.code).toBe(0);
    const missing = await immortal(
      ["whatif", path.join(FIX, "counter-v1.mjs"), "-i", "counter", "--checkpoint", "9"],
      w.env,
    );
    expect(missing.code).not.toBe(0);
    expect(missing.out).toContain("checkpoint 9 is not in");
    const throws = await immortal(
      ["whatif", path.join(FIX, "counter-v1-throws.mjs"), "-i", "counter"],
      w.env,
    );
    expect(throws.code).toBe(1);
    expect(throws.out).toMatch(/DIVERGENCE at input seq \d+ \(add\):/);
    expect(throws.out).toContain("version 1 threw RangeError: v1 cannot add 7");
    expect(throws.out).toMatch(/: 1 divergence$/m);
    const differs = await immortal(
      ["whatif", path.join(FIX, "counter-v1-differs.mjs"), "-i", "counter"],
      w.env,
    );
    expect(differs.code).toBe(1);
    expect(differs.out).toContain(
      "version 0 sent sender ← result of add: 5, version 1 sent sender ← result of add: 105",
    );
    expect(differs.out).toMatch(/: 1 divergence$/m);
    expect(snapshot(live)).toEqual(before);

    // The live upgrade: re-register with -uv 1, restart; the sender resumes while the counter upgrades.
    expect((await w.register("counter", ["-cv", "0", "-uv", "1"])).code).toBe(0);
    const cc = w.coordinator("counter");
    await ready(cc);
    const cb = w.run("counter", "counter-v1.mjs");
    await finish(w, sender);
    // Version 1's code ran every add after the upgrade point, on the migrated state.
    const v1 = cb.lines.filter((l) => l.startsWith("[counter] v1 "));
    expect(v1.length).toBe(COUNT - PAUSE);
    expect(v1.at(-1)).toBe(
      `[counter] v1 total=${COUNT} last=${COUNT} errors=0 upgradedAt=${PAUSE} v1adds=${COUNT - PAUSE}`,
    );
    expect(cb.lines.some((l) => l.startsWith("[counter] v0 "))).toBe(false);
    expect(w.reg()).toMatchObject({ currentVersion: 1, upgradeVersion: 1 });
    expect(readdirSync(path.join(w.logs, "counter_1"))).not.toContain("UPGRADE_IN_PROGRESS");
    // A later restart is an ordinary recovery of version 1: it replays silently and sends nothing new.
    await kill([cc, cb]);
    await ready(w.coordinator("counter"));
    const cb2 = w.run("counter", "counter-v1.mjs");
    await until(() => cb2.lines.includes("[run] counter is primary"), "version 1 to recover", 60_000);
    expect(cb2.lines.filter((l) => l.startsWith("[counter] "))).toEqual([]);
  }, 240_000);

  for (const step of ["after-checkpoint", "after-commit"] as const) {
    it(`a coordinator killed ${step.replace("-", " ")} of the upgrade recovers it, exactly once`, async () => {
      const w = await world(step);
      const { sender, counter } = await w.setUp("counter-v1.mjs");
      await kill(counter);
      expect((await w.register("counter", ["-cv", "0", "-uv", "1"])).code).toBe(0);
      const crashing = w.coordinator("counter", { IMMORTAL_UPGRADE_CRASH_AT: step });
      const binding = w.run("counter", "counter-v1.mjs");
      expect((await crashing.exited).signal).toBe("SIGKILL");
      await binding.exited;
      const dir = path.join(w.logs, "counter_1");
      // The pass conditions for having crashed at the intended step.
      expect(readdirSync(dir)).toContain("UPGRADE_IN_PROGRESS");
      expect(readdirSync(dir).some((f) => /^serverchkpt\d+$/.test(f))).toBe(true);
      expect(w.reg().currentVersion).toBe(step === "after-checkpoint" ? 0 : 1);

      await ready(w.coordinator("counter"));
      const cb = w.run("counter", "counter-v1.mjs");
      await finish(w, sender);
      expect(cb.lines.at(-1)).toBe(
        `[counter] v1 total=${COUNT} last=${COUNT} errors=0 upgradedAt=${PAUSE} v1adds=${COUNT - PAUSE}`,
      );
      expect(w.reg()).toMatchObject({ currentVersion: 1, upgradeVersion: 1 });
      expect(existsSync(path.join(dir, "UPGRADE_IN_PROGRESS"))).toBe(false);
    }, 240_000);
  }

  it("immortal dev runs the upgrade the registration asks for", async () => {
    const w = await world("dev");
    const data = path.join(w.home, "dev");
    const dev = start(["dev", path.join(FIX, "counter-v1.mjs"), "--data", data], w.env);
    await until(() => dev.lines.includes(`[sender] paused at ${PAUSE}`), "the sender to pause", 60_000);
    await kill([dev]);
    // Re-register the counter in dev's own registry, keeping the ports dev chose.
    const file = path.join(data, "registry", "instances", "counter.json");
    const r = JSON.parse(readFileSync(file, "utf8")) as {
      receivePort: number;
      sendPort: number;
      icPort: number;
    };
    const again = await immortal(
      [
        "register",
        "--registry",
        path.join(data, "registry"),
        "-i",
        "counter",
        "-rp",
        String(r.receivePort),
      ].concat([
        "-sp",
        String(r.sendPort),
        "-p",
        String(r.icPort),
        "-l",
        path.join(data, "logs"),
        "-uv",
        "1",
      ]),
      w.env,
    );
    expect(again.code).toBe(0);
    const dev2 = start(["dev", path.join(FIX, "counter-v1.mjs"), "--data", data], w.env);
    w.resume();
    await until(() => dev2.lines.some((l) => l.startsWith("[sender] DONE")), "the sender to finish", 90_000);
    // Handlers log only live: the two runs' lines together are the whole run, each line once.
    const all = dev.lines.concat(dev2.lines);
    checkSender(all);
    expect(all.filter((l) => l.startsWith("[counter] v1 ")).at(-1)).toBe(
      `[counter] v1 total=${COUNT} last=${COUNT} errors=0 upgradedAt=${PAUSE} v1adds=${COUNT - PAUSE}`,
    );
    expect(JSON.parse(readFileSync(file, "utf8"))).toMatchObject({ currentVersion: 1, upgradeVersion: 1 });
  }, 240_000);

  it("a downgrade is an upgrade to old code under a higher version: 1 → 2 runs version 0's handlers", async () => {
    const w = await world("down", 1);
    const { sender, counter } = await w.setUp("counter-v2.mjs");
    // Version 1 ran from the first start (the registration said -cv 1).
    expect(counter[1]!.lines.at(-1)).toMatch(/^\[counter\] v1 total=25 /);
    await kill(counter);
    expect((await w.register("counter", ["-cv", "1", "-uv", "2"])).code).toBe(0);
    const cc = w.coordinator("counter");
    await ready(cc);
    const cb = w.run("counter", "counter-v2.mjs");
    await finish(w, sender);
    expect(cb.lines.at(-1)).toBe(`[counter] v0 count=${COUNT} last=${COUNT} errors=0`);
    expect(w.reg()).toMatchObject({ currentVersion: 2, upgradeVersion: 2 });
    // Re-registering a version that has no log (instead of -cv 2 -uv 3) is refused, not a silent fresh start.
    await kill([cc]);
    expect((await w.register("counter", ["-cv", "3"])).code).toBe(0);
    const refused = w.coordinator("counter");
    expect((await refused.exited).code).toBe(1);
    expect(refused.lines.join("\n")).toMatch(
      /^FATAL ERROR 1: version mismatch: "counter" is registered at version 3/m,
    );
  }, 240_000);
});
