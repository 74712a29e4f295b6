// A destination that is down must not make the sender's coordinator grow without bound: past the output limit
// it stops reading its binding (TCP pushes back), and when the destination comes up everything is delivered
// exactly once.
import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { rmSync } from "node:fs";
import net from "node:net";
import { encodeMessages, MessageType } from "@immortal/wire";
import { afterAll, describe, expect, it } from "vitest";
import { type Coordinator, createRegistration } from "../../src/index.js";
import { ports, RAW_BINDING } from "../support/harness.js";
import { newEnv, startTestCoordinator } from "../support/in-process.js";

const LIMIT = 256 * 1024;
const TOTAL = 3000;

describe("back-pressure on the binding", () => {
  const procs: ChildProcess[] = [];
  const coordinators: Coordinator[] = [];
  let root = "";
  afterAll(async () => {
    for (const p of procs) p.kill("SIGKILL");
    for (const c of coordinators) await c.stop();
    if (root !== "") rmSync(root, { recursive: true, force: true });
  });

  function binding(cfg: Record<string, unknown>): { lines: string[] } {
    const b = spawn("node", [RAW_BINDING, JSON.stringify(cfg)], { stdio: ["ignore", "pipe", "inherit"] });
    procs.push(b);
    const lines: string[] = [];
    b.stdout!.on("data", (d: Buffer) => lines.push(...String(d).split("\n")));
    return { lines };
  }

  it("bounds the sender's buffered output while the destination is down, then delivers exactly once", async () => {
    const e = await newEnv("sender");
    root = e.root;
    const q = ports();
    await e.registry.put(createRegistration({ instanceName: "receiver", ...q, logDir: e.logDir }));
    const logLines: string[] = [];
    const sender = await startTestCoordinator(e, "sender", { logLines, maxOutputBytes: LIMIT });
    coordinators.push(sender);
    // 3,000 forks of 1 KiB in steps of 100: about 3 MB for a receiver whose coordinator is not running.
    binding({
      name: "sender",
      ...e.p,
      role: "client",
      dest: "receiver",
      total: TOTAL,
      step: 100,
      size: 1024,
    });
    const stats = () =>
      sender.stats().session as { outputBytes: number; backPressurePauses: number } | undefined;
    const deadline = Date.now() + 15_000;
    while ((stats()?.backPressurePauses ?? 0) === 0 && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 50));
    await new Promise((r) => setTimeout(r, 1000));
    const s = stats()!;
    expect(s.backPressurePauses).toBeGreaterThan(0);
    // At most the limit plus what one binding message (a batch of 100 forks) added before the check.
    expect(s.outputBytes).toBeGreaterThan(LIMIT);
    expect(s.outputBytes).toBeLessThan(LIMIT + 120 * 1024);
    expect(logLines.some((l) => l.includes("pausing the binding"))).toBe(true);

    // The receiver comes up: the backlog drains, the binding is read again, and every fork arrives once.
    const receiver = await startTestCoordinator({ ...e, p: q }, "receiver");
    coordinators.push(receiver);
    const r = binding({ name: "receiver", ...q, role: "server", total: TOTAL });
    const until = Date.now() + 30_000;
    while (!r.lines.some((l) => l.startsWith("DONE")) && Date.now() < until)
      await new Promise((res) => setTimeout(res, 50));
    const done = r.lines.find((l) => l.startsWith("DONE"));
    expect(done, r.lines.join("\n")).toBeDefined();
    expect(JSON.parse(done!.slice(5))).toMatchObject({ count: TOTAL, last: TOTAL, duplicates: 0, gaps: 0 });
    expect(logLines.some((l) => l.includes("reading the binding again"))).toBe(true);
  }, 60_000);

  it("holds commits and pauses peers while its own binding does not read, then catches up exactly once", async () => {
    const e = await newEnv("flooder");
    const q = ports();
    await e.registry.put(createRegistration({ instanceName: "slowpoke", ...q, logDir: e.logDir }));
    const slowLines: string[] = [];
    const slowpoke = await startTestCoordinator({ ...e, p: q }, "slowpoke", {
      logLines: slowLines,
      maxBindingBufferBytes: 1024 * 1024,
    });
    coordinators.push(slowpoke);
    // The receiver's binding, by hand: first start, then it stops reading.
    const toIc = net.connect({ port: q.receivePort, host: "127.0.0.1" });
    await once(toIc, "connect");
    const fromIc = net.connect({ port: q.sendPort, host: "127.0.0.1" });
    await once(fromIc, "connect");
    await once(fromIc, "readable");
    toIc.write(
      encodeMessages([
        { type: MessageType.InitialMessage, data: new Uint8Array(0) },
        { type: MessageType.Checkpoint, length: 0n },
      ]),
    );
    fromIc.pause();
    const flooder = await startTestCoordinator(e, "flooder", { maxOutputBytes: 1 << 30 });
    coordinators.push(flooder);
    const FORKS = 20_000;
    binding({
      name: "flooder",
      ...e.p,
      role: "client",
      dest: "slowpoke",
      total: FORKS,
      step: 1000,
      size: 1024,
    });
    type Stats = { deliveryPauses: number; bindingQueuedBytes: number; commit: { messages: number } };
    const stats = () => slowpoke.stats().session as Stats | undefined;
    const deadline = Date.now() + 20_000;
    while ((stats()?.deliveryPauses ?? 0) === 0 && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 50));
    await new Promise((r) => setTimeout(r, 1500));
    expect(stats()!.deliveryPauses).toBeGreaterThan(0);
    // Held: what waits for the binding stays near the limit (at most one more record), not 20 MB.
    expect(stats()!.bindingQueuedBytes).toBeLessThan(4 * 1024 * 1024);
    const heldAt = stats()!.commit.messages;
    expect(heldAt).toBeLessThan(FORKS);
    expect(slowLines.some((l) => l.includes("holding commits and pausing peers"))).toBe(true);
    // The binding reads again: everything is committed, once.
    fromIc.resume();
    const until2 = Date.now() + 30_000;
    while ((stats()?.commit.messages ?? 0) < FORKS + 1 && Date.now() < until2)
      await new Promise((r) => setTimeout(r, 50));
    expect(stats()!.commit.messages).toBe(FORKS + 1); // the InitialMessage, then every fork
    expect(slowLines.some((l) => l.includes("commits and peers resumed"))).toBe(true);
    toIc.destroy();
    fromIc.destroy();
  }, 90_000);
});
