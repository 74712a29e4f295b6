// A destination that is down must not make the sender's coordinator grow without bound: past the output limit
// it stops reading its binding (TCP pushes back), and when the destination comes up everything is delivered
// exactly once.
import { type ChildProcess, spawn } from "node:child_process";
import { rmSync } from "node:fs";
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
});
