// The client against the real coordinator, in-process: first start, self-calls, checkpoint, recovery with
// replay, impulses refused during replay.
import type { Coordinator } from "@immortal/coordinator";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type CheckpointInfo, type ClientState, CoordinatorClient } from "../src/index.js";
import { CounterApp, Method, u32 } from "./support/apps.js";
import { cleanup, type IcFolder, registerInstance, startInProcess } from "./support/real-ic.js";

async function until(pred: () => boolean, what: string, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!pred()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

function connect(f: IcFolder, app: CounterApp, host?: string): CoordinatorClient {
  const client = new CoordinatorClient({
    receivePort: f.receivePort,
    sendPort: f.sendPort,
    instanceName: f.name,
    app,
    initialMessage: Buffer.from("counter v1"),
    ...(host === undefined ? {} : { host }),
  });
  app.client = client;
  return client;
}

describe("against a real coordinator (in-process)", () => {
  let f: IcFolder;
  let ic: Coordinator;
  beforeAll(async () => {
    f = await registerInstance("counter");
    ic = await startInProcess(f);
  });
  afterAll(async () => {
    await ic?.stop();
    if (f !== undefined) cleanup(f);
  });

  it("first start, self-calls, checkpoint, then recovery replays and becomes primary", async () => {
    // ---- first start --------------------------------------------------------------------------------
    const app1 = new CounterApp(10);
    const c1 = connect(f, app1);
    const states: ClientState[] = [];
    c1.on("state", (s) => states.push(s));
    const checkpoints: CheckpointInfo[] = [];
    c1.on("checkpoint", (i) => checkpoints.push(i));
    let primaryEvents = 0;
    c1.on("primary", () => primaryEvents++);
    await c1.start();
    await c1.whenPrimary();
    expect(states).toEqual(["connecting", "starting", "primary"]);
    expect(primaryEvents).toBe(1);
    // The initial checkpoint went out with next sequence 0 (record 0, the InitialMessage, follows it).
    expect(checkpoints).toEqual([{ direction: "saved", length: 22n, nextSequence: 0 }]);

    // The InitialMessage comes back exactly once as record 0; its handler's 10 self-calls round-trip.
    await until(() => app1.count === 10, "the initial self-calls");
    expect(app1.deliveries.filter((d) => d.kind === "initial")).toEqual([
      { kind: "initial", sequence: 0, replaying: false },
    ]);
    expect(app1.deliveries.every((d) => !d.replaying)).toBe(true);

    // Impulses from outside a handler, once primary; each handler forks one more self-call.
    for (let i = 0; i < 5; i++) c1.sendRpc("", Method.Poke, 2, new Uint8Array(0));
    await until(() => app1.count === 10 + 5 * 101, "the impulses and their forks");

    // ---- checkpoint at the binding's request --------------------------------------------------------
    c1.requestCheckpoint();
    await until(() => checkpoints.length === 2, "the requested checkpoint");
    const ck = checkpoints[1]!;
    expect(ck.direction).toBe("saved");
    expect(ck.nextSequence).toBe(c1.nextSequence);
    const countAtCheckpoint = app1.count;

    // ---- after the checkpoint: more work, including a handler that sends an impulse (a bug) -----------
    for (let i = 0; i < 3; i++) c1.sendRpc("", Method.Poke, 2, new Uint8Array(0));
    c1.sendRpc(f.name, Method.Add, 2, u32(7)); // own name as destination = self-call
    c1.sendRpc("", Method.BadImpulse, 2, new Uint8Array(0));
    await until(
      () => app1.count === countAtCheckpoint + 3 * 101 + 7 && app1.nested === 1,
      "post-checkpoint work",
    );
    expect(app1.impulseRefusals).toBe(0); // while primary the client cannot tell it is a bug
    const finalCount = app1.count;
    const lastSeq = c1.nextSequence - 1;

    const stopped = ic.sessionStopped();
    await c1.close();
    expect((await c1.closed).reason).toBe("closed");
    await stopped;

    // ---- recovery ---------------------------------------------------------------------------------
    const app2 = new CounterApp(10);
    const c2 = connect(f, app2, "localhost");
    const states2: ClientState[] = [];
    c2.on("state", (s) => states2.push(s));
    const loaded: CheckpointInfo[] = [];
    c2.on("checkpoint", (i) => loaded.push(i));
    let replayedAtPrimary = -1;
    c2.on("primary", () => {
      replayedAtPrimary = app2.deliveries.length;
    });
    await c2.start();
    await c2.whenPrimary();
    expect(states2).toEqual(["connecting", "starting", "recovering", "primary"]);
    // The state came from the checkpoint stream, then the log after it was replayed.
    expect(loaded[0]).toEqual({ direction: "loaded", length: ck.length, nextSequence: ck.nextSequence });
    expect(app2.loadedBytes).toBe(Number(ck.length));
    const replayed = app2.deliveries.slice(0, replayedAtPrimary);
    expect(replayed.length).toBeGreaterThan(0);
    expect(replayed.every((d) => d.replaying)).toBe(true);
    expect(replayed[0]!.sequence).toBe(ck.nextSequence);
    expect(replayed[replayed.length - 1]!.sequence).toBe(lastSeq);
    // Replaying the buggy handler: the impulse it tries to send is refused synchronously.
    expect(app2.impulseRefusals).toBe(1);
    expect(app2.count).toBe(finalCount);
    expect(app2.nested).toBe(1);
    expect(app2.deliveries.some((d) => d.kind === "initial")).toBe(false);

    // Primary again: the sequence continues where the log ended, and replayed forks were not logged twice.
    await new Promise((r) => setTimeout(r, 100));
    expect(c2.nextSequence).toBe(lastSeq + 1);
    expect(app2.count).toBe(finalCount);
    const stopped2 = ic.sessionStopped();
    await c2.close();
    await stopped2;
  });

  // Regression (seen while writing these tests, fixed in the coordinator at 790658e): impulse IDs are
  // (incarnation, n) with n restarting at 1 in every binding session, and the incarnation used to be bumped
  // only per coordinator process, so after a binding reconnected to the same coordinator its first impulses
  // reused logged IDs and were dropped as duplicates.
  it("an impulse sent after a binding reconnects to the same coordinator process is delivered", async () => {
    const app = new CounterApp(10);
    const c = connect(f, app);
    await c.start();
    await c.whenPrimary();
    const before = app.count;
    c.sendRpc("", Method.Add, 2, u32(1));
    try {
      await until(() => app.count === before + 1, "the impulse", 1500);
    } finally {
      await c.close();
    }
  });
});
