// Recovery from damaged logs, with an in-process coordinator (same code as the executable) and a real binding
// process: torn tails and flipped bits in the tail are truncated and the instance carries on; corruption before
// the tail stops the coordinator with a clear message and leaves every file as it was.
import { type ChildProcess, spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { readdirSync, readFileSync, rmSync, truncateSync, writeFileSync } from "node:fs";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { type Coordinator, FileInstanceStorage } from "../../src/index.js";
import { RAW_BINDING } from "../support/harness.js";
import { newEnv as makeEnv, startTestCoordinator, type TestEnv } from "../support/in-process.js";

type Env = TestEnv;

const envs: Env[] = [];
const running: Array<{ stop(): Promise<void> } | ChildProcess> = [];
afterEach(async () => {
  for (const r of running.splice(0)) {
    if ("kill" in r) r.kill("SIGKILL");
    else await r.stop();
  }
  for (const e of envs.splice(0)) rmSync(e.root, { recursive: true, force: true });
});

async function newEnv(name: string): Promise<Env> {
  const e = await makeEnv(name);
  envs.push(e);
  return e;
}

async function ic(
  e: Env,
  name: string,
  logLines: string[],
  onFatal?: (err: Error) => void,
  logTriggerSizeMB = 1024,
): Promise<Coordinator> {
  const c = await startTestCoordinator(e, name, { logLines, onFatal, logTriggerSizeMB });
  running.push(c);
  return c;
}

function binding(
  e: Env,
  cfg: Record<string, unknown>,
): { proc: ChildProcess; lines: string[]; waitFor: (s: string) => Promise<void> } {
  const proc = spawn(
    "node",
    [RAW_BINDING, JSON.stringify({ receivePort: e.p.receivePort, sendPort: e.p.sendPort, ...cfg })],
    {
      stdio: ["ignore", "pipe", "inherit"],
    },
  );
  running.push(proc);
  const lines: string[] = [];
  let buf = "";
  const waiters: Array<() => void> = [];
  proc.stdout!.on("data", (d: Buffer) => {
    buf += d;
    const parts = buf.split("\n");
    buf = parts.pop()!;
    lines.push(...parts);
    for (const w of waiters.splice(0)) w();
  });
  const waitFor = async (prefix: string) => {
    const deadline = Date.now() + 20_000;
    while (!lines.some((l) => l.startsWith(prefix))) {
      if (Date.now() > deadline) throw new Error(`binding never printed ${prefix}: ${lines.join(" | ")}`);
      await new Promise<void>((r) => {
        waiters.push(r);
        setTimeout(r, 100);
      });
    }
  };
  return { proc, lines, waitFor };
}

/** seq → the payload hashes observed for it, from a deliveries file appended across binding restarts. */
function deliveries(file: string): Map<number, Set<string>> {
  const m = new Map<number, Set<string>>();
  for (const line of readFileSync(file, "utf8").split("\n")) {
    const [seq, hash] = line.split(" ");
    if (seq === undefined || hash === undefined || hash === "") continue;
    const set = m.get(Number(seq)) ?? new Set();
    set.add(hash);
    m.set(Number(seq), set);
  }
  return m;
}

const hashDir = (dir: string) =>
  readdirSync(dir)
    .sort()
    .map(
      (f) =>
        `${f}:${createHash("sha256")
          .update(readFileSync(path.join(dir, f)))
          .digest("hex")}`,
    );

/** Runs a self-chain of `total` calls to completion, then stops everything. */
async function finishedRun(e: Env, name: string, total: number, file: string) {
  const lines: string[] = [];
  const c = await ic(e, name, lines);
  const b = binding(e, { name, role: "selfchain", total, deliveries: file });
  await b.waitFor("DONE");
  b.proc.kill("SIGKILL");
  await c.sessionStopped();
  await c.stop();
  return FileInstanceStorage.forInstance(e.logDir, name, 0);
}

describe("recovery from damaged logs", () => {
  for (const damage of [
    "torn tail",
    "flipped bit in the last data record",
    "flipped bit in the last meta record",
  ] as const) {
    it(`recovers from a ${damage} and finishes the run exactly once`, async () => {
      const e = await newEnv("chain");
      const file = path.join(e.root, "deliveries");
      const storage = await finishedRun(e, "chain", 300, file);
      const [log] = await storage.listLogs();
      const scan = await storage.scanLog(log!, { isLastLog: true, repair: false });
      const last = scan.units[scan.units.length - 1]!;
      const logPath = storage.logPath(log!);
      if (damage === "torn tail") {
        truncateSync(logPath, last.offset + 1 + Math.floor(Math.random() * (last.length - 2)));
      } else {
        const bytes = readFileSync(logPath);
        const at =
          damage === "flipped bit in the last data record" ? last.offset + 30 : last.offset + last.length - 3;
        bytes[at]! ^= 0x10;
        writeFileSync(logPath, bytes);
      }
      // Recovery truncates the damaged unit; replay regenerates the self-call it held, which is logged again.
      const lines: string[] = [];
      await ic(e, "chain", lines);
      const b = binding(e, { name: "chain", role: "selfchain", total: 300, deliveries: file });
      await b.waitFor("DONE");
      expect(b.lines.filter((l) => l.startsWith("BINDING FATAL"))).toEqual([]);
      expect(lines.some((l) => l.includes("torn log tail truncated"))).toBe(true);
      // Every sequence number ever delivered carried the same record both times it was seen.
      const seen = deliveries(file);
      for (const [seq, hashes] of seen) expect(hashes.size, `record ${seq}`).toBe(1);
      expect([...seen.keys()].sort((a, b) => a - b)).toEqual([...Array(seen.size).keys()]);
    });
  }

  it("refuses to start on corruption before the tail and changes nothing on disk", async () => {
    const e = await newEnv("corrupt");
    const storage = await finishedRun(e, "corrupt", 200, path.join(e.root, "deliveries"));
    const [log] = await storage.listLogs();
    const scan = await storage.scanLog(log!, { isLastLog: true, repair: false });
    const middle = scan.units[Math.floor(scan.units.length / 2)]!;
    const bytes = readFileSync(storage.logPath(log!));
    bytes[middle.offset + 28]! ^= 0x01;
    writeFileSync(storage.logPath(log!), bytes);
    const before = hashDir(storage.dir);

    let fatal: Error | undefined;
    const lines: string[] = [];
    await ic(e, "corrupt", lines, (err) => {
      fatal = err;
    });
    binding(e, { name: "corrupt", role: "selfchain", total: 200 });
    const deadline = Date.now() + 15_000;
    while (fatal === undefined && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    expect(fatal?.name).toBe("LogCorruptionError");
    expect(fatal?.message).toMatch(/serverlog1/);
    expect(hashDir(storage.dir).filter((f) => !f.startsWith("stats.json"))).toEqual(
      before.filter((f) => !f.startsWith("stats.json")),
    );
  });

  it("takes checkpoints when the log passes the trigger size, keeps two, and falls back past a damaged newest one", async () => {
    const e = await newEnv("rotating");
    const file = path.join(e.root, "deliveries");
    const lines: string[] = [];
    // A 4 KiB trigger: a chain of 400 self-calls rotates the log many times.
    const c = await ic(e, "rotating", lines, undefined, 4 / 1024);
    const b = binding(e, { name: "rotating", role: "selfchain", total: 400, deliveries: file });
    await b.waitFor("DONE");
    b.proc.kill("SIGKILL");
    await c.sessionStopped();
    await c.stop();
    const storage = FileInstanceStorage.forInstance(e.logDir, "rotating", 0);
    const checkpoints = await storage.listCheckpoints();
    const logs = await storage.listLogs();
    expect(lines.filter((l) => l.includes("log reached the trigger size")).length).toBeGreaterThan(3);
    // Retention: the newest two checkpoints and the logs from the older of them on.
    expect(checkpoints.length).toBe(2);
    expect(checkpoints[1]! - checkpoints[0]!).toBe(1);
    expect(Math.min(...logs)).toBe(checkpoints[0]);

    // Damage the newest checkpoint: recovery verifies it, falls back to the older one, and replays both logs.
    const newest = storage.checkpointPath(checkpoints[1]!);
    const bytes = readFileSync(newest);
    bytes[bytes.length - 20]! ^= 0xff;
    writeFileSync(newest, bytes);
    const lines2: string[] = [];
    await ic(e, "rotating", lines2);
    const b2 = binding(e, { name: "rotating", role: "selfchain", total: 400, deliveries: file });
    await b2.waitFor("READY-PRIMARY");
    expect(lines2.some((l) => l.includes("checkpoint unusable, trying an older one"))).toBe(true);
    expect(lines2.some((l) => l.includes(`"checkpoint":${checkpoints[0]}`) && l.includes("recovering"))).toBe(
      true,
    );
    expect(b2.lines.filter((l) => l.startsWith("BINDING FATAL"))).toEqual([]);
    const seen = deliveries(file);
    for (const [seq, hashes] of seen) expect(hashes.size, `record ${seq}`).toBe(1);
  });
});
