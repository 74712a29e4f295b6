import { once } from "node:events";
import net from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import { MessageType, WireError } from "@immortal/wire";
import { afterEach, describe, expect, it } from "vitest";
import {
  drained,
  type MessageStreamEvent,
  MessageWriter,
  type RecordStreamEvent,
  readEvents,
  writeBuffers,
  writeCheckpoint,
} from "../src/index.js";
import { normalizeEvents } from "./helpers.js";

const MiB = 1024 * 1024;
const servers: net.Server[] = [];
const sockets: net.Socket[] = [];

afterEach(() => {
  for (const s of sockets.splice(0)) s.destroy();
  for (const s of servers.splice(0)) s.close();
});

/** A connected TCP pair on 127.0.0.1: `writer` is the accepting side, `reader` the connecting side. */
async function socketPair(): Promise<{ writer: net.Socket; reader: net.Socket }> {
  const server = net.createServer();
  servers.push(server);
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const { port } = server.address() as net.AddressInfo;
  const accepted = once(server, "connection") as Promise<[net.Socket]>;
  const reader = net.connect(port, "127.0.0.1");
  sockets.push(reader);
  await once(reader, "connect");
  const [writer] = await accepted;
  sockets.push(writer);
  return { writer, reader };
}

async function collect<E>(it: AsyncIterable<E>): Promise<E[]> {
  const out: E[] = [];
  for await (const ev of it) out.push(ev);
  return out;
}

const rpc = (i: number) =>
  ({
    type: MessageType.RPC,
    destination: i % 3 === 0 ? "" : "peer",
    reserved: 0,
    methodId: i,
    rpcType: 1,
    args: Buffer.alloc(i % 200, i & 0xff),
  }) as const;

describe("async iterator over a real socket", () => {
  it("messages mode: batched writes, a streamed checkpoint, then more messages", async () => {
    const { writer, reader } = await socketPair();
    const events = collect(readEvents(reader, { mode: "messages" }));
    const w = new MessageWriter({ slabSize: 4096 });
    const batches: Uint8Array[] = [];
    for (let i = 0; i < 5000; i++) {
      w.add(rpc(i));
      if (i % 100 === 99) batches.push(w.take());
    }
    if (!writeBuffers(writer, batches)) await drained(writer);
    const ckLen = 3 * MiB + 5;
    async function* ckSource() {
      for (let sent = 0; sent < ckLen; sent += 64 * 1024)
        yield Buffer.alloc(Math.min(64 * 1024, ckLen - sent), 0x42);
    }
    await writeCheckpoint(writer, BigInt(ckLen), ckSource());
    if (!writeBuffers(writer, [w.add({ type: MessageType.TakeCheckpoint }).take()])) await drained(writer);
    writer.end();

    const got = await events;
    const norm = normalizeEvents(got);
    expect(norm.length).toBe(5000 + 4);
    expect(got.slice(0, 5000).map((e) => (e.type === MessageType.RPC ? e.methodId : -1))).toEqual(
      Array.from({ length: 5000 }, (_, i) => i),
    );
    expect(norm[5000]).toEqual({ type: MessageType.Checkpoint, length: BigInt(ckLen) });
    expect(norm[5001]).toEqual({ checkpointBytes: `hex:${"42".repeat(ckLen)}` });
    expect(norm.slice(5002)).toEqual(["checkpointEnd", { type: MessageType.TakeCheckpoint }]);
  });

  it("records mode: IC-style records and a checkpoint record", async () => {
    const { writer, reader } = await socketPair();
    const events = collect(readEvents(reader, { mode: "records" }));
    const w = new MessageWriter();
    w.add({ type: MessageType.TakeBecomingPrimaryCheckpoint });
    writer.write(w.takeRecord({ committerId: 3, sequence: -1 }));
    await writeCheckpoint(writer, 10n, [Buffer.from("0123456789")], { record: { committerId: 3 } });
    for (let seq = 0; seq < 200; seq++) {
      for (let i = 0; i < 4; i++) {
        w.add({ type: MessageType.RPC, reserved: 0, methodId: seq, rpcType: 0, args: Buffer.alloc(60, i) });
      }
      if (!writer.write(w.takeRecord({ committerId: 3, sequence: seq }))) await drained(writer);
    }
    writer.end();
    const got = (await events) as RecordStreamEvent[];
    const kinds = got.map((e) => e.type);
    expect(kinds.slice(0, 4)).toEqual(["record", "record", "checkpointChunk", "checkpointEnd"]);
    const records = got.filter((e) => e.type === "record");
    expect(records.map((r) => r.header.sequence)).toEqual([
      -1,
      -2,
      ...Array.from({ length: 200 }, (_, i) => i),
    ]);
    expect(records[1]?.header.checkBytes).toBe(0n); // as AMBROSIA sends the recovery-checkpoint record
    expect(records.slice(2).every((r) => r.messages.length === 4)).toBe(true);
  });

  it("a slow consumer back-pressures the sender instead of buffering the stream", async () => {
    const { writer, reader } = await socketPair();
    const LEN = 256 * MiB;
    const CH = MiB;
    let produced = 0;
    async function* source() {
      for (; produced < LEN; ) {
        produced += CH;
        yield Buffer.alloc(CH, 1);
      }
    }
    const sending = writeCheckpoint(writer, BigInt(LEN), source()).then(() => writer.end());
    const it = readEvents(reader, { mode: "messages" });
    const first = await it.next();
    expect(first.value).toEqual({ type: MessageType.Checkpoint, length: BigInt(LEN) });

    await sleep(400); // the consumer stalls
    const ahead = produced;
    // Kernel socket buffers (a few MiB on loopback), the streams' high-water marks and one chunk in flight.
    expect(ahead).toBeLessThan(40 * MiB);
    expect(reader.readableLength).toBeLessThanOrEqual(reader.readableHighWaterMark + 64 * 1024);

    let bytes = 0;
    let maxArrayBuffers = 0;
    for await (const ev of it) {
      if (ev.type === "checkpointChunk") {
        bytes += ev.bytes.length;
        if ((bytes & (16 * MiB - 1)) < ev.bytes.length) {
          maxArrayBuffers = Math.max(maxArrayBuffers, process.memoryUsage().arrayBuffers);
          await sleep(1); // stay slowish throughout
        }
      }
    }
    await sending;
    expect(bytes).toBe(LEN);
    expect(maxArrayBuffers).toBeLessThan(128 * MiB);
  });

  it("malformed bytes reject with a WireError after the good events, and close the socket", async () => {
    const { writer, reader } = await socketPair();
    const w = new MessageWriter();
    writer.write(w.add({ type: MessageType.TakeCheckpoint }).take());
    writer.write(Buffer.from([0x02, 0x63]));
    const seen: MessageStreamEvent[] = [];
    let error: unknown;
    try {
      for await (const ev of readEvents(reader)) seen.push(ev);
    } catch (err) {
      error = err;
    }
    expect(seen).toEqual([{ type: MessageType.TakeCheckpoint }]);
    expect(error).toBeInstanceOf(WireError);
    expect((error as WireError).code).toBe("UNKNOWN_TYPE");
    expect(reader.destroyed).toBe(true);
  });

  it("a connection that closes mid-frame is TRUNCATED", async () => {
    const { writer, reader } = await socketPair();
    writer.end(Buffer.from([0x20, 0x09, 1, 2]));
    await expect(collect(readEvents(reader))).rejects.toMatchObject({ code: "TRUNCATED" });
  });

  it("breaking out of the loop closes the socket", async () => {
    const { writer, reader } = await socketPair();
    const w = new MessageWriter();
    for (let i = 0; i < 10; i++) w.add({ type: MessageType.TakeCheckpoint });
    writer.write(w.take());
    for await (const _ of readEvents(reader)) break;
    expect(reader.destroyed).toBe(true);
    await once(writer, "close");
  });
});

describe("readEvents over other sources", () => {
  it("accepts a sync iterable of chunks", async () => {
    const w = new MessageWriter();
    const bytes = w
      .add({ type: MessageType.TakeCheckpoint })
      .add({ type: MessageType.UpgradeService })
      .take();
    const events = await collect(readEvents([bytes.subarray(0, 1), bytes.subarray(1)]));
    expect(events).toEqual([{ type: MessageType.TakeCheckpoint }, { type: MessageType.UpgradeService }]);
  });

  it("passes a source failure through after the events before it, and keeps rethrowing it", async () => {
    const boom = new Error("ECONNRESET");
    async function* source() {
      yield new MessageWriter().add({ type: MessageType.TakeCheckpoint }).take();
      throw boom;
    }
    const it = readEvents(source());
    expect((await it.next()).value).toEqual({ type: MessageType.TakeCheckpoint });
    await expect(it.next()).rejects.toBe(boom);
    await expect(it.next()).rejects.toBe(boom);
  });

  it("a chunk that is not bytes is a NOT_BYTES LogError", async () => {
    const strings = ["not bytes"] as unknown as Uint8Array[];
    await expect(collect(readEvents(strings))).rejects.toMatchObject({ name: "LogError", code: "NOT_BYTES" });
  });

  it("overlapping next() calls are answered in order", async () => {
    const w = new MessageWriter();
    async function* source() {
      for (let i = 0; i < 5; i++) {
        await sleep(1);
        yield w.add({ type: MessageType.InitialMessage, data: Buffer.from([i]) }).take();
      }
    }
    const it = readEvents(source());
    const results = await Promise.all([it.next(), it.next(), it.next(), it.next(), it.next(), it.next()]);
    expect(results.map((r) => (r.done ? "done" : r.value.type === 9 ? r.value.data[0] : -1))).toEqual([
      0,
      1,
      2,
      3,
      4,
      "done",
    ]);
  });
});
