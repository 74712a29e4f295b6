// Garbage on either port never reaches the log and never stops the coordinator from serving others; every
// refusal says why.
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { encodeMessage, MessageType } from "@immortal/wire";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { encodeData, encodeHello } from "../../src/engine/link-protocol.js";
import {
  type Coordinator,
  createRegistration,
  FileInstanceStorage,
  FolderRegistry,
  startCoordinator,
} from "../../src/index.js";
import { sendGarbage } from "../support/garbage.js";
import { ports, RAW_BINDING } from "../support/harness.js";
import { captureLogger, startTestCoordinator } from "../support/in-process.js";

const root = mkdtempSync(path.join(os.tmpdir(), "imm-adversarial-"));
const registry = FolderRegistry.open({ dir: path.join(root, "reg") });
const logDir = path.join(root, "logs");
const p = ports();
const logLines: string[] = [];
let ic: Coordinator;
const procs: ChildProcess[] = [];

/** Runs a real binding (a chain of self-calls) to completion: proof that the instance still works end to end. */
function runChain(total: number): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const b = spawn(
      "node",
      [
        RAW_BINDING,
        JSON.stringify({
          name: "target",
          receivePort: p.receivePort,
          sendPort: p.sendPort,
          role: "selfchain",
          total,
        }),
      ],
      {
        stdio: ["ignore", "pipe", "inherit"],
      },
    );
    procs.push(b);
    let out = "";
    const t = setTimeout(() => reject(new Error(`chain did not finish: ${out}`)), 20_000);
    b.stdout!.on("data", (d: Buffer) => {
      out += d;
      if (out.includes("DONE")) {
        clearTimeout(t);
        b.kill("SIGKILL");
        resolve(out.split("\n"));
      }
    });
  });
}

beforeAll(async () => {
  await registry.put(createRegistration({ instanceName: "target", ...p, logDir }));
  ic = await startTestCoordinator({ root, registry, logDir, p }, "target", { logLines });
  await runChain(50);
});

afterAll(async () => {
  for (const b of procs) b.kill("SIGKILL");
  await ic.stop();
  rmSync(root, { recursive: true, force: true });
});

async function until(pred: () => boolean, what: string, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/**
 * A binding session that sends `bytes` on the receive port: a session needs both ports, so the send port is held
 * while they go out, until the coordinator ends the session (or 3 s pass).
 */
async function bindingSession(bytes: Uint8Array, ms: number): Promise<void> {
  const send = net.connect({ port: p.sendPort, host: "127.0.0.1" });
  send.on("error", () => {});
  send.resume();
  const stopped = ic.sessionStopped();
  await sendGarbage(p.receivePort, bytes, ms);
  await Promise.race([stopped, new Promise((r) => setTimeout(r, 3000))]);
  send.destroy();
}

async function logIsClean(): Promise<void> {
  const storage = FileInstanceStorage.forInstance(logDir, "target", 0);
  const logs = await storage.listLogs();
  for (const n of logs) {
    const r = await storage.scanLog(n, { isLastLog: n === logs[logs.length - 1], repair: false });
    expect(r.tail, `log ${n} must end cleanly`).toBeUndefined();
  }
}

describe("adversarial bytes", () => {
  it("random bytes, huge sizes and bad frames on the IC-to-IC port are refused; the instance keeps working", async () => {
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ minLength: 1, maxLength: 512 }), async (bytes) => {
        expect(await sendGarbage(p.icPort, bytes)).toBe("closed");
      }),
      { numRuns: 60 },
    );
    const hello = encodeHello({ sender: "target", receiver: "target", senderRegistrationId: "x" });
    const crafted = [
      Buffer.from([0xff, 0xff, 0xff, 0x7f, 1]), // a frame of 2 GiB
      Buffer.from([0, 0, 0, 0]), // a frame of 0 bytes
      Buffer.concat([hello.subarray(0, 5), Buffer.from("NOTMAGIC"), hello.subarray(13)]), // bad magic
      encodeData([]), // DATA before HELLO
      hello, // registration id mismatch
    ];
    for (const c of crafted) expect(await sendGarbage(p.icPort, c)).toBe("closed");
    await until(
      () => logLines.some((l) => l.includes("does not match its registration")),
      "the mismatch refusal",
    );
    expect((await runChain(60)).some((l) => l.startsWith("DONE"))).toBe(true);
    await logIsClean();
  }, 60_000);

  it("random bytes on the binding port end that session only; the next binding recovers an intact log", async () => {
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ minLength: 1, maxLength: 256 }), async (bytes) => {
        await bindingSession(bytes, 200);
        await new Promise((r) => setTimeout(r, 10));
      }),
      { numRuns: 25 },
    );
    expect(ic.currentCore).toBeUndefined();
    expect((await runChain(70)).some((l) => l.startsWith("DONE"))).toBe(true);
    await logIsClean();
  }, 90_000);

  it("a binding's batch holding anything but RPCs is refused with its reason (forwarded batches are checked)", async () => {
    // Valid on the wire (a Ping may stand in a batch), but a binding's batch may hold only RPCs.
    const batch = encodeMessage({
      type: MessageType.RPCBatch,
      messages: [
        { type: 0, destination: "", reserved: 0, methodId: 7, rpcType: 0, args: Buffer.from("a self-call") },
        { type: MessageType.Ping, data: Buffer.from("not from a binding") },
      ],
    });
    // The last test's chain binding was SIGKILLed: connect only once the coordinator has seen it go.
    await until(() => ic.currentCore === undefined, "the previous session to end");
    await bindingSession(batch, 2000);
    await until(
      () =>
        logLines.some(
          (l) => l.includes("closing the binding connection") && l.includes("where an RPC must stand"),
        ),
      "the refusal of the batch",
    );
    expect((await runChain(80)).some((l) => l.startsWith("DONE"))).toBe(true);
    await logIsClean();
  }, 30_000);
});

describe("clear refusals", () => {
  it("port already in use", async () => {
    const other = FolderRegistry.open({ dir: path.join(root, "reg") });
    await expect(
      startCoordinator({
        instanceName: "target",
        registry: other,
        icPort: ports().icPort,
        receivePort: p.receivePort,
        sendPort: ports().sendPort,
        logDir,
        currentVersion: 0,
        logTriggerSizeMB: 1,
        out: () => {},
        logger: captureLogger([]),
      }),
    ).rejects.toThrow(/receive port \d+ is not available/);
  });

  it("unregistered instance", async () => {
    await expect(
      startCoordinator({
        instanceName: "ghost",
        registry,
        icPort: 0,
        receivePort: 1,
        sendPort: 2,
        logDir,
        currentVersion: 0,
        logTriggerSizeMB: 1,
        out: () => {},
        logger: captureLogger([]),
      }),
    ).rejects.toThrow(/instance "ghost" is not registered/);
  });

  it("unknown destination is reported and the sender keeps working", async () => {
    const q = ports();
    await registry.put(createRegistration({ instanceName: "lonely", ...q, logDir }));
    const lines: string[] = [];
    const lonely = await startTestCoordinator({ root, registry, logDir, p: q }, "lonely", {
      logLines: lines,
    });
    try {
      const b = spawn(
        "node",
        [
          RAW_BINDING,
          JSON.stringify({
            name: "lonely",
            receivePort: q.receivePort,
            sendPort: q.sendPort,
            role: "client",
            dest: "nobody",
            total: 5,
            step: 5,
          }),
        ],
        { stdio: "ignore" },
      );
      procs.push(b);
      await until(
        () => lines.some((l) => l.includes('unknown destination \\"nobody\\": it is not registered')),
        "the unknown-destination report",
      );
      // The forks wait in the output buffer for "nobody" to be registered; the instance itself stays primary.
      expect(lonely.currentCore?.isPrimary).toBe(true);
      expect(
        (lonely.stats().session as { links: Record<string, { pending: number }> }).links.nobody?.pending,
      ).toBe(5);
      b.kill("SIGKILL");
    } finally {
      await lonely.stop();
    }
  });
});
