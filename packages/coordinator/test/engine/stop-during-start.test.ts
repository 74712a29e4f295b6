// Regression (seen while testing the SDK against an in-process coordinator stopped right after its binding
// attached): a coordinator stopped during a first start, while it waited for the binding's InitialMessage,
// rejected the checkpoint it was also waiting for before anything awaited it — an unhandled rejection, which in
// the executable takes the process down with a stack trace instead of a clean stop or a FATAL ERROR line.

import { rmSync } from "node:fs";
import net from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { newEnv, startTestCoordinator, type TestEnv } from "../support/in-process.js";

const envs: TestEnv[] = [];
afterEach(() => {
  for (const e of envs.splice(0)) rmSync(e.root, { recursive: true, force: true });
});

describe("stopping a coordinator during a first start", () => {
  it("leaves no unhandled rejection behind", async () => {
    const e = await newEnv("early");
    envs.push(e);
    const lines: string[] = [];
    const ic = await startTestCoordinator(e, "early", { logLines: lines });
    const unhandled: unknown[] = [];
    const onUnhandled = (r: unknown) => unhandled.push(r);
    process.on("unhandledRejection", onUnhandled);
    try {
      // A "binding" that attaches both ports and then sends nothing: the coordinator asks for the first
      // checkpoint and waits for the InitialMessage.
      const sockets = [e.p.receivePort, e.p.sendPort].map((port) => {
        const s = net.connect({ port, host: "127.0.0.1" });
        s.on("error", () => {});
        s.resume();
        return s;
      });
      const deadline = Date.now() + 10_000;
      while (!lines.some((l) => l.includes("asking the binding for its initial checkpoint"))) {
        if (Date.now() > deadline) throw new Error(`the first start never began: ${lines.join("\n")}`);
        await new Promise((r) => setTimeout(r, 10));
      }
      await ic.stop();
      for (const s of sockets) s.destroy();
      await new Promise((r) => setTimeout(r, 200));
      expect(unhandled).toEqual([]);
    } finally {
      process.off("unhandledRejection", onUnhandled);
    }
  });
});
