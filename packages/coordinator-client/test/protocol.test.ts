// The client against a scripted coordinator that speaks raw bytes: batching and AttachTo on the wire, the
// start-up variants the real coordinator does not do yet (upgrade, what-if, BecomingPrimary, repro), and
// faults it never makes (sequence gaps, malformed records, early hang-ups).
import { CHECKPOINT_SEQUENCE, encodeRecord, MessageType, type OutgoingRpc, WireError } from "@immortal/wire";
import { afterEach, describe, expect, it } from "vitest";
import {
  CheckpointError,
  CheckpointFormatError,
  type ClientApp,
  ClientClosedError,
  type ClientState,
  ConnectError,
  CoordinatorClient,
  type CoordinatorClientOptions,
  DisconnectedError,
  type DispatchedMessage,
  type DispatchInfo,
  decodeEnvelopeHeader,
  encodeEnvelopeHeader,
  HandlerError,
  ImpulseDuringReplayError,
  ProtocolError,
  type SavedState,
  SequenceGapError,
} from "../src/index.js";
import { FakeIc } from "./support/fake-ic.js";
import { freePorts } from "./support/real-ic.js";

interface Seen {
  readonly what: string;
  readonly sequence: number;
  readonly replaying: boolean;
}

/** Records every delivery; its state is `state`; `handle` lets a test react to messages. */
class RecApp implements ClientApp {
  readonly seen: Seen[] = [];
  state: Uint8Array = Buffer.from("initial-state");
  loaded: Buffer | undefined;
  readonly upgrades: Array<{ whatIf: boolean; at: number }> = [];
  handle: ((m: DispatchedMessage, info: DispatchInfo) => void | Promise<void>) | undefined;

  onMessage(m: DispatchedMessage, info: DispatchInfo): void | Promise<void> {
    const what = m.type === MessageType.InitialMessage ? "initial" : `m${m.methodId}`;
    this.seen.push({ what, sequence: info.sequence, replaying: info.replaying });
    return this.handle?.(m, info);
  }
  saveState(): SavedState {
    return this.state;
  }
  async loadState(chunks: AsyncIterable<Uint8Array>): Promise<void> {
    const parts: Buffer[] = [];
    for await (const c of chunks) parts.push(Buffer.from(c));
    this.loaded = Buffer.concat(parts);
  }
  upgrade(info: { whatIf: boolean }): void {
    this.upgrades.push({ whatIf: info.whatIf, at: this.seen.length });
    this.state = Buffer.from("upgraded-state");
  }
}

const open: Array<{ ic?: FakeIc; client?: CoordinatorClient }> = [];
afterEach(async () => {
  for (const { ic, client } of open.splice(0)) {
    await client?.close();
    await ic?.close();
  }
});

async function setup(
  app: ClientApp,
  options: Partial<CoordinatorClientOptions> = {},
): Promise<{ ic: FakeIc; client: CoordinatorClient; states: ClientState[] }> {
  const ic = await FakeIc.start();
  const client = new CoordinatorClient({
    receivePort: ic.receivePort,
    sendPort: ic.sendPort,
    instanceName: "me",
    app,
    initialMessage: Buffer.from("hello"),
    ...options,
  });
  open.push({ ic, client });
  const states: ClientState[] = [];
  client.on("state", (s) => states.push(s));
  await client.start();
  await ic.whenConnected();
  return { ic, client, states };
}

const rpc = FakeIc.rpc;
const tick = () => new Promise((r) => setImmediate(r));

/** The frames the client wrote after its start-up handshake (InitialMessage + Checkpoint). */
function afterHandshake(ic: FakeIc) {
  const i = ic.frames.findIndex((f) => f.type === MessageType.Checkpoint);
  return ic.frames.slice(i + 1);
}

describe("first start on the wire", () => {
  it("connects receive port first, sends InitialMessage then the enveloped checkpoint, dispatches record 0 once", async () => {
    const app = new RecApp();
    const { ic, client, states } = await setup(app);
    expect(ic.accepts).toEqual(["receive", "send"]);
    expect(client.state).toBe("starting");
    await ic.firstStart();
    await client.whenPrimary();
    expect(ic.frames.map((f) => f.type)).toEqual([MessageType.InitialMessage, MessageType.Checkpoint]);
    const ck = ic.checkpoints[0]!;
    expect(decodeEnvelopeHeader(ck)).toEqual({ nextSequence: 0 });
    expect(ck.subarray(0, 8)).toEqual(Buffer.from([0x49, 0x4d, 0x43, 0x4b, 1, 0, 0, 0]));
    expect(ck.subarray(16).toString()).toBe("initial-state");
    await ic.waitFor(() => app.seen.length === 1, "record 0");
    expect(app.seen).toEqual([{ what: "initial", sequence: 0, replaying: false }]);
    expect(states).toEqual(["connecting", "starting", "primary"]);
  });

  it("retries while the coordinator is not up yet", async () => {
    const [receivePort, sendPort] = (await freePorts(2)) as [number, number];
    const client = new CoordinatorClient({ receivePort, sendPort, app: new RecApp(), connectRetryMs: 20 });
    const started = client.start();
    await new Promise((r) => setTimeout(r, 300));
    expect(client.state).toBe("connecting");
    const ic = await FakeIc.start({ receivePort, sendPort });
    open.push({ ic, client });
    await started;
    await ic.whenConnected();
    expect(client.state).toBe("starting");
  });

  it("starts over when the coordinator drops it before saying anything (a previous binding still attached)", async () => {
    const ic = await FakeIc.start({ dropFirst: true });
    const app = new RecApp();
    const client = new CoordinatorClient({ receivePort: ic.receivePort, sendPort: ic.sendPort, app });
    open.push({ ic, client });
    await client.start();
    await ic.whenConnected();
    await ic.firstStart();
    await client.whenPrimary();
    expect(ic.dropped).toBe(2);
  });

  it("works over ::1", async () => {
    const ic = await FakeIc.start({ host: "::1" });
    const client = new CoordinatorClient({
      receivePort: ic.receivePort,
      sendPort: ic.sendPort,
      host: "::1",
      app: new RecApp(),
    });
    open.push({ ic, client });
    await client.start();
    await ic.firstStart();
    await client.whenPrimary();
  });

  it("close() while connecting stops the retries", async () => {
    const [receivePort, sendPort] = (await freePorts(2)) as [number, number];
    const client = new CoordinatorClient({ receivePort, sendPort, app: new RecApp() });
    const started = client.start().then(
      () => undefined,
      (e: unknown) => e,
    );
    await new Promise((r) => setTimeout(r, 100));
    await client.close();
    expect(await started).toBeInstanceOf(ClientClosedError);
    expect((await client.closed).reason).toBe("closed");
  });

  it("ConnectError names the host and both ports after the timeout", async () => {
    const [receivePort, sendPort] = (await freePorts(2)) as [number, number];
    const client = new CoordinatorClient({ receivePort, sendPort, app: new RecApp(), connectTimeoutMs: 300 });
    const t0 = Date.now();
    const err = await client.start().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(Date.now() - t0).toBeGreaterThanOrEqual(280);
    expect(err).toBeInstanceOf(ConnectError);
    const ce = err as ConnectError;
    expect(ce.message).toContain(`receive port ${receivePort}`);
    expect(ce.message).toContain(`send port ${sendPort}`);
    expect(ce.message).toContain("127.0.0.1");
    expect(ce.message).toContain("ECONNREFUSED");
    expect((await client.closed).reason).toBe("error");
    expect(client.state).toBe("closed");
  });
});

describe("sending", () => {
  async function primary(options: Partial<CoordinatorClientOptions> = {}) {
    const app = new RecApp();
    const s = await setup(app, options);
    await s.ic.firstStart();
    await s.client.whenPrimary();
    await s.ic.waitFor(() => app.seen.length === 1, "record 0");
    return { ...s, app };
  }

  it("N sendRpc calls in one tick go out as ONE RPCBatch frame; a lone call as a plain RPC", async () => {
    const { ic, client } = await primary();
    for (let i = 0; i < 50; i++) client.sendRpc("", 7, 1, Buffer.from([i]));
    await ic.waitFor(() => afterHandshake(ic).length >= 1, "the batch");
    await tick();
    const frames = afterHandshake(ic);
    expect(frames).toHaveLength(1);
    const batch = frames[0]!;
    expect(batch.type).toBe(MessageType.RPCBatch);
    if (batch.type !== MessageType.RPCBatch) return;
    expect(batch.messages).toHaveLength(50);
    expect(batch.messages.map((m) => (m as OutgoingRpc).args[0])).toEqual([...Array(50).keys()]);
    expect(batch.messages.every((m) => (m as OutgoingRpc).destination === "")).toBe(true);

    client.sendRpc("", 8, 1, Buffer.from([1]));
    await ic.waitFor(() => afterHandshake(ic).length === 2, "the lone RPC");
    expect(afterHandshake(ic)[1]).toMatchObject({
      type: MessageType.RPC,
      destination: "",
      methodId: 8,
      rpcType: 1,
    });
  });

  it("queue() waits for flush(); flush() writes one RPCBatch", async () => {
    const { ic, client } = await primary();
    for (let i = 0; i < 3; i++) client.queue("", 9, 1, Buffer.from([i]));
    await new Promise((r) => setTimeout(r, 50));
    expect(afterHandshake(ic)).toHaveLength(0);
    expect(client.bufferedBytes).toBeGreaterThan(0);
    client.flush();
    await ic.waitFor(() => afterHandshake(ic).length === 1, "the explicit batch");
    const f = afterHandshake(ic)[0]!;
    expect(f.type === MessageType.RPCBatch && f.messages.length).toBe(3);
  });

  it("AttachTo exactly once per remote destination, before its first RPC, never for self or the own name", async () => {
    const { ic, client } = await primary();
    client.sendRpc("alpha", 1, 1, Buffer.alloc(0));
    client.sendRpc("", 2, 1, Buffer.alloc(0));
    client.sendRpc("beta", 3, 1, Buffer.alloc(0));
    client.sendRpc("alpha", 4, 1, Buffer.alloc(0));
    client.sendRpc("me", 5, 1, Buffer.alloc(0));
    await ic.waitFor(() => afterHandshake(ic).length >= 3, "first tick");
    await tick();
    client.sendRpc("beta", 6, 1, Buffer.alloc(0));
    client.sendRpc("gamma", 7, 1, Buffer.alloc(0));
    await ic.waitFor(() => afterHandshake(ic).length >= 5, "second tick");
    await tick();
    const frames = afterHandshake(ic);
    expect(frames.map((f) => f.type)).toEqual([
      MessageType.AttachTo,
      MessageType.AttachTo,
      MessageType.RPCBatch,
      MessageType.AttachTo,
      MessageType.RPCBatch,
    ]);
    expect(ic.ofType(MessageType.AttachTo).map((a) => a.destination)).toEqual(["alpha", "beta", "gamma"]);
    const b1 = frames[2]!;
    if (b1.type !== MessageType.RPCBatch) throw new Error("not a batch");
    expect(b1.messages.map((m) => (m as OutgoingRpc).destination)).toEqual([
      "alpha",
      "",
      "beta",
      "alpha",
      "",
    ]);
  });

  it("an Impulse before primary throws ImpulseDuringReplayError synchronously", async () => {
    const { client } = await setup(new RecApp());
    expect(() => client.sendRpc("", 1, 2, Buffer.alloc(0))).toThrow(ImpulseDuringReplayError);
    expect(() => client.queue("x", 1, 2, Buffer.alloc(0))).toThrow(ImpulseDuringReplayError);
    expect(() => client.sendRpc("", 1, 1, Buffer.alloc(0))).not.toThrow(); // forks are fine
  });
});

describe("recovery variants", () => {
  const replay = [FakeIc.record(3, [rpc(1)]), FakeIc.record(4, [rpc(2), rpc(3)])];

  it("recovery: checkpoint streamed to the loader, replay with replaying=true, TakeBecomingPrimaryCheckpoint → primary", async () => {
    const app = new RecApp();
    const { ic, client, states } = await setup(app);
    ic.send(...FakeIc.checkpoint(Buffer.from("saved-state"), 3), ...replay);
    ic.send(FakeIc.control(MessageType.TakeBecomingPrimaryCheckpoint));
    await client.whenPrimary();
    expect(app.loaded?.toString()).toBe("saved-state");
    expect(app.seen).toEqual([
      { what: "m1", sequence: 3, replaying: true },
      { what: "m2", sequence: 4, replaying: true },
      { what: "m3", sequence: 4, replaying: true },
    ]);
    await ic.waitFor(() => ic.checkpoints.length === 1, "the becoming-primary checkpoint");
    expect(ic.frames.some((f) => f.type === MessageType.InitialMessage)).toBe(false);
    expect(decodeEnvelopeHeader(ic.checkpoints[0]!)).toEqual({ nextSequence: 5 });
    expect(states).toEqual(["connecting", "starting", "recovering", "primary"]);
    ic.send(FakeIc.record(5, [rpc(4)]));
    await ic.waitFor(() => app.seen.length === 4, "record 5");
    expect(app.seen[3]).toEqual({ what: "m4", sequence: 5, replaying: false });
  });

  it("live upgrade: replay on old code, UpgradeTakeCheckpoint → upgrade hook → upgraded checkpoint → primary", async () => {
    const app = new RecApp();
    const { ic, client } = await setup(app);
    ic.send(...FakeIc.checkpoint(Buffer.from("v1"), 3), ...replay);
    ic.send(FakeIc.control(MessageType.UpgradeTakeCheckpoint));
    await client.whenPrimary();
    expect(app.upgrades).toEqual([{ whatIf: false, at: 3 }]); // after the whole replay
    await ic.waitFor(() => ic.checkpoints.length === 1, "the upgraded checkpoint");
    expect(ic.checkpoints[0]!.subarray(16).toString()).toBe("upgraded-state");
    expect(decodeEnvelopeHeader(ic.checkpoints[0]!).nextSequence).toBe(5);
  });

  it("what-if: Checkpoint, UpgradeService → upgrade hook, then replay on the new code; never primary", async () => {
    const app = new RecApp();
    const { ic, client, states } = await setup(app);
    let threw: unknown;
    app.handle = () => {
      try {
        client.sendRpc("", 9, 2, Buffer.alloc(0));
      } catch (e) {
        threw = e;
      }
    };
    ic.send(
      ...FakeIc.checkpoint(Buffer.from("v1"), 3),
      FakeIc.control(MessageType.UpgradeService),
      ...replay,
    );
    await ic.waitFor(() => app.seen.length === 3, "the what-if replay");
    expect(app.upgrades).toEqual([{ whatIf: true, at: 0 }]); // before the replay
    expect(app.seen.every((s) => s.replaying)).toBe(true);
    expect(threw).toBeInstanceOf(ImpulseDuringReplayError);
    expect(client.state).toBe("replaying-whatif");
    expect(states).toEqual(["connecting", "starting", "recovering", "replaying-whatif"]);
    expect(ic.checkpoints).toHaveLength(0);
  });

  it("active/active standby: BecomingPrimary switches to primary without a checkpoint", async () => {
    const app = new RecApp();
    let primaryCalls = 0;
    const { ic, client } = await setup(app, { onPrimary: () => primaryCalls++ });
    ic.send(
      ...FakeIc.checkpoint(Buffer.from("s"), 3),
      ...replay,
      FakeIc.control(MessageType.BecomingPrimary),
    );
    await client.whenPrimary();
    expect(primaryCalls).toBe(1);
    client.sendRpc("", 1, 2, Buffer.alloc(0)); // impulses allowed now
    await ic.waitFor(() => ic.frames.length === 1, "the impulse");
    expect(ic.frames.map((f) => f.type)).toEqual([MessageType.RPC]);
    expect(ic.checkpoints).toHaveLength(0);
  });

  it("repro/debug run: checkpoint + replay, stays recovering", async () => {
    const app = new RecApp();
    const { ic, client } = await setup(app);
    ic.send(...FakeIc.checkpoint(Buffer.from("s"), 3), ...replay);
    await ic.waitFor(() => app.seen.length === 3, "the replay");
    await new Promise((r) => setTimeout(r, 50));
    expect(client.state).toBe("recovering");
    expect(client.nextSequence).toBe(5);
  });

  it("a checkpoint that is not ours is a CheckpointFormatError", async () => {
    const { ic, client } = await setup(new RecApp());
    const bad = FakeIc.checkpoint(Buffer.from("x"), 0);
    bad[1] = Buffer.from("NOT-OUR-MAGIC!!!");
    ic.send(...bad);
    const info = await client.closed;
    expect(info.reason).toBe("error");
    expect(info.error).toBeInstanceOf(CheckpointFormatError);
  });
});

describe("dispatch order and faults", () => {
  it("a sequence gap is a fatal SequenceGapError and the connection is closed", async () => {
    const app = new RecApp();
    const { ic, client } = await setup(app);
    await ic.firstStart();
    await ic.waitFor(() => app.seen.length === 1, "record 0");
    ic.send(FakeIc.record(1, [rpc(1)]), FakeIc.record(3, [rpc(3)]), FakeIc.record(4, [rpc(4)]));
    const info = await client.closed;
    expect(info.reason).toBe("error");
    expect(info.error).toBeInstanceOf(SequenceGapError);
    expect(info.error).toMatchObject({ expected: 2, actual: 3 });
    expect(app.seen.map((s) => s.what)).toEqual(["initial", "m1"]);
    await ic.waitFor(() => ic.fromClient!.destroyed || ic.fromClient!.readableEnded, "the client hanging up");
  });

  it("negative sequence IDs are outside the log order", async () => {
    const app = new RecApp();
    const { ic, client } = await setup(app);
    await ic.firstStart();
    // −1 control records between logged ones do not count; a TakeCheckpoint is answered with next sequence 2.
    ic.send(
      FakeIc.record(1, [rpc(1)]),
      FakeIc.control(MessageType.TakeCheckpoint),
      FakeIc.record(2, [rpc(2)]),
    );
    await ic.waitFor(() => app.seen.length === 3 && ic.checkpoints.length === 2, "records and checkpoint");
    expect(decodeEnvelopeHeader(ic.checkpoints[1]!).nextSequence).toBe(2);
    expect(client.state).toBe("primary");
  });

  it("malformed input (bad check bytes) is a ProtocolError caused by the WireError", async () => {
    const app = new RecApp();
    const { ic, client } = await setup(app);
    await ic.firstStart();
    const r = Buffer.from(FakeIc.record(1, [rpc(1, Buffer.from("abc"))]));
    r[r.length - 1]! ^= 0xff;
    ic.send(r);
    const info = await client.closed;
    expect(info.error).toBeInstanceOf(ProtocolError);
    expect((info.error as ProtocolError).cause).toBeInstanceOf(WireError);
    expect(((info.error as ProtocolError).cause as WireError).code).toBe("BAD_CHECK_BYTES");
  });

  it("an RPC in a control record, or a logged record before start-up, is a ProtocolError", async () => {
    const { ic, client } = await setup(new RecApp());
    ic.send(FakeIc.record(0, [rpc(1)]));
    const info = await client.closed;
    expect(info.error).toBeInstanceOf(ProtocolError);
    expect(info.error!.message).toContain("before the start-up sequence");
  });

  it("a handler that throws stops the client with a HandlerError", async () => {
    const app = new RecApp();
    const { ic, client } = await setup(app);
    await ic.firstStart();
    app.handle = (m) => {
      if (m.type === MessageType.RPC && m.methodId === 2) throw new Error("boom");
    };
    ic.send(FakeIc.record(1, [rpc(1), rpc(2), rpc(3)]));
    const info = await client.closed;
    expect(info.error).toBeInstanceOf(HandlerError);
    expect(info.error!.message).toContain("method 2 of log record 1: boom");
    expect(app.seen.map((x) => x.what)).toEqual(["initial", "m1", "m2"]);
  });

  it("the coordinator hanging up is a DisconnectedError", async () => {
    const { ic, client } = await setup(new RecApp());
    await ic.firstStart();
    await client.whenPrimary();
    ic.toClient!.destroy();
    const info = await client.closed;
    expect(info.reason).toBe("disconnected");
    expect(info.error).toBeInstanceOf(DisconnectedError);
    expect(info.error!.message).toContain(`send connection (port ${ic.sendPort})`);
    expect(client.state).toBe("closed");
    expect(() => client.sendRpc("", 1, 1, Buffer.alloc(0))).toThrow(DisconnectedError);
  });

  it("an async handler suspends dispatch; TakeCheckpoint is answered only after it completed", async () => {
    const app = new RecApp();
    const { ic, client } = await setup(app);
    await ic.firstStart();
    await ic.waitFor(() => app.seen.length === 1, "record 0");
    let release!: () => void;
    const order: string[] = [];
    app.handle = (m) => {
      if (m.type !== MessageType.RPC) return;
      order.push(`start m${m.methodId}`);
      if (m.methodId === 1) {
        return new Promise<void>((r) => {
          release = () => {
            order.push("end m1");
            r();
          };
        });
      }
    };
    app.saveState = () => {
      order.push("save");
      return Buffer.from("s");
    };
    ic.send(
      FakeIc.record(1, [rpc(1), rpc(2)]),
      FakeIc.control(MessageType.TakeCheckpoint),
      FakeIc.record(2, [rpc(3)]),
    );
    await new Promise((r) => setTimeout(r, 100));
    expect(order).toEqual(["start m1"]);
    expect(ic.checkpoints).toHaveLength(1);
    release();
    await ic.waitFor(() => ic.checkpoints.length === 2 && order.length === 5, "the rest");
    expect(order).toEqual(["start m1", "end m1", "start m2", "save", "start m3"]);
    expect(decodeEnvelopeHeader(ic.checkpoints[1]!).nextSequence).toBe(2);
    expect(client.state).toBe("primary");
  });

  it("RPCs sent by handlers before a TakeCheckpoint are written before the Checkpoint message", async () => {
    const app = new RecApp();
    const { ic, client } = await setup(app);
    await ic.firstStart();
    app.handle = (m) => {
      if (m.type === MessageType.RPC) client.sendRpc("", 50 + m.methodId, 1, Buffer.alloc(0));
    };
    ic.send(FakeIc.record(1, [rpc(1), rpc(2)]), FakeIc.control(MessageType.TakeCheckpoint));
    await ic.waitFor(() => ic.checkpoints.length === 2, "the checkpoint");
    expect(afterHandshake(ic).map((f) => f.type)).toEqual([MessageType.RPCBatch, MessageType.Checkpoint]);
  });
});

describe("back-pressure", () => {
  it("a coordinator that stops reading makes the client stop reading: bufferedBytes stays bounded", async () => {
    const app = new RecApp();
    const hwm = 1024 * 1024;
    const { ic, client } = await setup(app, { highWaterMark: hwm });
    await ic.firstStart();
    await ic.waitFor(() => app.seen.length === 1, "record 0");
    const big = Buffer.alloc(64 * 1024, 7);
    app.handle = (m) => {
      if (m.type === MessageType.RPC) client.sendRpc("", 2, 1, big);
    };
    ic.fromClient!.pause(); // the coordinator stops reading what the client sends
    let maxBuffered = 0;
    const sampler = setInterval(() => {
      maxBuffered = Math.max(maxBuffered, client.bufferedBytes);
    }, 2);
    const total = 4000; // would be 256 MiB of output if nothing pushed back
    const filler = Buffer.alloc(8 * 1024, 1); // 32 MiB of records in all: more than the kernel buffers
    let seq = 1;
    const pump = () => {
      while (seq <= total) {
        if (!ic.toClient!.write(FakeIc.record(seq, [rpc(1, filler)]))) {
          seq++;
          ic.toClient!.once("drain", pump);
          return;
        }
        seq++;
      }
    };
    pump();
    // Wait until dispatch has stood still for 300 ms (robust on a loaded machine).
    let dispatchedWhileBlocked = -1;
    for (let stable = 0; stable < 3; ) {
      await new Promise((r) => setTimeout(r, 100));
      stable = app.seen.length === dispatchedWhileBlocked ? stable + 1 : 0;
      dispatchedWhileBlocked = app.seen.length;
    }
    clearInterval(sampler);
    // Dispatch stopped, and what the client buffered stayed near the mark (one record's output over it, plus
    // one tick's worth), while the coordinator's unsent records pile up on its side.
    expect(app.seen.length).toBe(dispatchedWhileBlocked);
    expect(dispatchedWhileBlocked).toBeLessThan(total);
    expect(maxBuffered).toBeLessThan(hwm + 4 * big.length);
    expect(client.bufferedBytes).toBeGreaterThan(hwm);
    expect(seq).toBeLessThan(total);
    // The coordinator reads again: everything flows to the end.
    ic.fromClient!.resume();
    await ic.waitFor(() => app.seen.length === total + 1, "all records", 30_000);
    expect(client.state).toBe("primary");
  });
});

describe("checkpoint streaming", () => {
  it("a slow loader pauses the socket: checkpoint bytes in flight stay bounded", async () => {
    const MiB = 1024 * 1024;
    const total = 96 * MiB;
    let consumed = 0;
    let maxInFlight = 0;
    let sent = 0;
    let ic!: FakeIc;
    const app = new RecApp();
    app.loadState = async (chunks) => {
      let n = 0;
      for await (const c of chunks) {
        consumed += c.length;
        maxInFlight = Math.max(maxInFlight, sent - ic.toClient!.writableLength - consumed);
        if (++n % 16 === 0) await new Promise((r) => setTimeout(r, 1)); // a slow loader
      }
    };
    const s = await setup(app, { loadHighWaterMark: MiB });
    ic = s.ic;
    const header = encodeEnvelopeHeader(0);
    ic.send(
      encodeRecord({
        committerId: 1,
        sequence: CHECKPOINT_SEQUENCE,
        messages: [{ type: MessageType.Checkpoint, length: BigInt(header.length + total) }],
      }),
      header,
    );
    // The coordinator side writes with back-pressure, like a real one streaming from its checkpoint file.
    const chunk = Buffer.alloc(MiB, 3);
    await new Promise<void>((resolve) => {
      const pump = () => {
        while (sent < total) {
          sent += chunk.length;
          if (!ic.toClient!.write(chunk)) {
            ic.toClient!.once("drain", pump);
            return;
          }
        }
        resolve();
      };
      pump();
    });
    ic.send(FakeIc.control(MessageType.TakeBecomingPrimaryCheckpoint));
    await s.client.whenPrimary();
    expect(consumed).toBe(total);
    // Kernel socket buffers on both ends plus the 1 MiB mark: a small fraction of the 96 MiB.
    expect(maxInFlight).toBeLessThan(24 * MiB);
  });

  it("a loader that returns before reading everything is a CheckpointError", async () => {
    const app = new RecApp();
    app.loadState = async (chunks) => {
      for await (const _ of chunks) break;
    };
    const { ic, client } = await setup(app);
    ic.send(...FakeIc.checkpoint(Buffer.alloc(100_000, 1), 0));
    const info = await client.closed;
    expect(info.error).toBeInstanceOf(CheckpointError);
    expect(info.error).toMatchObject({ direction: "load" });
  });

  it("saveState may stream without a length (the client buffers it) and must match a length it gives", async () => {
    const app = new RecApp();
    const { ic, client } = await setup(app);
    app.saveState = () => ({ chunks: [Buffer.from("ab"), Buffer.from("cd")] });
    await ic.firstStart();
    await client.whenPrimary();
    await ic.waitFor(() => ic.checkpoints.length === 1, "the checkpoint");
    expect(ic.checkpoints[0]!.subarray(16).toString()).toBe("abcd");

    app.saveState = () => ({ length: 10n, chunks: [Buffer.from("short")] });
    ic.send(FakeIc.control(MessageType.TakeCheckpoint));
    const info = await client.closed;
    expect(info.error).toBeInstanceOf(CheckpointError);
    expect(info.error).toMatchObject({ direction: "save" });
    expect(info.error!.message).toContain("CHECKPOINT_LENGTH_MISMATCH");
  });
});
