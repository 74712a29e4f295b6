// The coordinator as a separate process (its ImmortalCoordinator executable), SIGKILLed under the client.
import type { ChildProcess } from "node:child_process";
import { afterAll, describe, expect, it } from "vitest";
import { type CheckpointInfo, CoordinatorClient, DisconnectedError } from "../src/index.js";
import { CounterApp, Method, u32 } from "./support/apps.js";
import { cleanup, type IcFolder, killProcess, registerInstance, startProcess } from "./support/real-ic.js";

async function until(pred: () => boolean, what: string, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!pred()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

describe("coordinator process killed with SIGKILL", () => {
  let f: IcFolder | undefined;
  let proc: ChildProcess | undefined;
  afterAll(async () => {
    if (proc !== undefined) await killProcess(proc);
    if (f !== undefined) cleanup(f);
  });

  it("the client reports the disconnect; a new client recovers from the restarted coordinator", async () => {
    f = await registerInstance("killed");
    const folder = f;
    // The client starts first and retries until the coordinator process is up.
    const app1 = new CounterApp(20);
    const c1 = new CoordinatorClient({
      receivePort: folder.receivePort,
      sendPort: folder.sendPort,
      app: app1,
    });
    app1.client = c1;
    const starting = c1.start();
    proc = await startProcess(folder);
    await starting;
    await c1.whenPrimary();
    await until(() => app1.count === 20, "the initial self-calls");
    for (let i = 0; i < 4; i++) c1.sendRpc("", Method.Poke, 2, new Uint8Array(0));
    await until(() => app1.count === 20 + 4 * 101, "the impulses");
    const expected = app1.count;
    const lastSeq = c1.nextSequence - 1;

    await killProcess(proc);
    proc = undefined;
    const info = await c1.closed;
    expect(info.reason).toBe("disconnected");
    expect(info.error).toBeInstanceOf(DisconnectedError);
    expect(() => c1.sendRpc("", Method.Add, 1, u32(1))).toThrow(DisconnectedError);

    // A fresh coordinator process recovers from its files; a fresh client from the coordinator.
    proc = await startProcess(folder);
    const app2 = new CounterApp(20);
    const c2 = new CoordinatorClient({
      receivePort: folder.receivePort,
      sendPort: folder.sendPort,
      app: app2,
    });
    app2.client = c2;
    const loaded: CheckpointInfo[] = [];
    c2.on("checkpoint", (i) => loaded.push(i));
    await c2.start();
    await c2.whenPrimary();
    // No checkpoint was taken after the first one: the whole log (from record 0) is replayed.
    expect(loaded[0]).toMatchObject({ direction: "loaded", nextSequence: 0 });
    expect(app2.count).toBe(expected);
    expect(app2.deliveries.filter((d) => d.kind === "initial")).toEqual([
      { kind: "initial", sequence: 0, replaying: true },
    ]);
    expect(app2.deliveries.every((d) => d.replaying)).toBe(true);
    expect(c2.nextSequence).toBe(lastSeq + 1);
    // New impulses after the coordinator restarted are delivered and continue the sequence.
    c2.sendRpc("", Method.Add, 2, u32(5));
    await until(() => app2.count === expected + 5, "an impulse after recovery");
    expect(app2.deliveries[app2.deliveries.length - 1]).toMatchObject({
      sequence: lastSeq + 1,
      replaying: false,
    });
    await c2.close();
  });
});
