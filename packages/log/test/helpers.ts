import {
  type BatchableMessage,
  encodeMessage,
  encodeRecord,
  type Message,
  MessageType,
  type RpcLayout,
} from "@immortal/wire";
import fc from "fast-check";
import {
  MessageDecoder,
  type MessageDecoderOptions,
  type MessageStreamEvent,
  RecordDecoder,
  type RecordDecoderOptions,
  type RecordStreamEvent,
} from "../src/index.js";

// ---------------------------------------------------------------------------------------------
// Arbitraries for every message type

const int32 = fc.integer({ min: -0x80000000, max: 0x7fffffff });
const int64 = fc.bigInt({ min: -(1n << 63n), max: (1n << 63n) - 1n });
const bytes = (maxLength = 48): fc.Arbitrary<Uint8Array> => fc.uint8Array({ maxLength });
// Graphemes only: a lone surrogate would not survive UTF-8 and is not a valid instance name anyway.
const name = fc.string({ unit: "grapheme", maxLength: 12 });

export function rpcArb(layout: RpcLayout): fc.Arbitrary<Message & { type: 0 }> {
  const fields = {
    type: fc.constant(MessageType.RPC),
    reserved: fc.integer({ min: 0, max: 255 }),
    methodId: int32,
    rpcType: fc.constantFrom(0 as const, 1 as const, 2 as const),
    args: bytes(),
  };
  return layout === "outgoing" ? fc.record({ ...fields, destination: name }) : fc.record(fields);
}

function batchableArb(layout: RpcLayout): fc.Arbitrary<BatchableMessage> {
  return fc.oneof(
    { weight: 4, arbitrary: rpcArb(layout) },
    fc.record({ type: fc.constant(MessageType.Ping), data: bytes(16) }),
    fc.record({ type: fc.constant(MessageType.PingReturn), data: bytes(16) }),
  );
}

/** Every message type except Checkpoint (whose raw bytes the stream arbitraries add). */
export function plainMessageArb(layout: RpcLayout): fc.Arbitrary<Message> {
  const batch = fc.array(batchableArb(layout), { maxLength: 5 });
  return fc.oneof(
    { weight: 6, arbitrary: rpcArb(layout) },
    fc.record({ type: fc.constant(MessageType.AttachTo), destination: name }),
    fc.record({
      type: fc.constantFrom(
        MessageType.TakeCheckpoint,
        MessageType.UpgradeTakeCheckpoint,
        MessageType.TakeBecomingPrimaryCheckpoint,
        MessageType.UpgradeService,
        MessageType.BecomingPrimary,
      ),
    }),
    fc.record({
      type: fc.constantFrom(MessageType.Commit, MessageType.ReplayFrom),
      seq: int64,
      replayableSeq: int64,
    }),
    fc.record({ type: fc.constant(MessageType.TrimTo), seq: int64 }),
    fc.record({ type: fc.constant(MessageType.RPCBatch), messages: batch }),
    batch.chain((messages) =>
      fc.record({
        type: fc.constant(MessageType.CountReplayableRPCBatch),
        replayableCount: fc.integer({ min: 0, max: messages.length }),
        messages: fc.constant(messages),
      }),
    ),
    fc.record({ type: fc.constantFrom(MessageType.Ping, MessageType.PingReturn), data: bytes() }),
    fc.record({ type: fc.constant(MessageType.InitialMessage), data: bytes() }),
  ) as fc.Arbitrary<Message>;
}

/** Raw checkpoint bytes, including the empty checkpoint. */
const rawArb = fc.oneof(fc.constant(new Uint8Array(0)), fc.uint8Array({ minLength: 1, maxLength: 400 }));

/** An item of a message stream: a message, plus the raw bytes that follow it if it is a Checkpoint. */
export interface StreamItem {
  readonly message: Message;
  readonly raw?: Uint8Array;
}

export function messageItemArb(layout: RpcLayout): fc.Arbitrary<StreamItem> {
  return fc.oneof(
    { weight: 8, arbitrary: plainMessageArb(layout).map((message) => ({ message })) },
    {
      weight: 1,
      arbitrary: rawArb.map((raw) => ({
        message: { type: MessageType.Checkpoint, length: BigInt(raw.length) },
        raw,
      })),
    },
  );
}

export interface RecordItem {
  readonly committerId: number;
  readonly sequence: number;
  readonly messages: readonly Message[];
  /** Raw checkpoint bytes after the record, if it carries a Checkpoint. */
  readonly raw?: Uint8Array;
}

export const recordItemArb: fc.Arbitrary<RecordItem> = fc
  .record({
    committerId: int32,
    sequence: fc.oneof(
      fc.constantFrom(-1, -2),
      fc.nat(),
      fc.integer({ min: -(2 ** 53) + 1, max: 2 ** 53 - 1 }),
    ),
    messages: fc.array(plainMessageArb("incoming"), { maxLength: 6 }),
    checkpoint: fc.option(fc.tuple(rawArb, fc.nat()), { freq: 4 }),
  })
  .map(({ committerId, sequence, messages, checkpoint }) => {
    if (checkpoint === null) return { committerId, sequence, messages };
    const [raw, at] = checkpoint;
    const all = [...messages];
    all.splice(at % (all.length + 1), 0, { type: MessageType.Checkpoint, length: BigInt(raw.length) });
    return { committerId, sequence, messages: all, raw };
  });

// ---------------------------------------------------------------------------------------------
// Encoding streams and their expected events

/** Events with checkpoint chunks merged and bytes as hex, so two decodes compare structurally. */
export type Normalized = unknown[];

export function encodeMessageStream(items: readonly StreamItem[]): Uint8Array {
  const parts: Uint8Array[] = [];
  for (const it of items) {
    parts.push(encodeMessage(it.message));
    if (it.raw !== undefined) parts.push(it.raw);
  }
  return Buffer.concat(parts);
}

export function encodeRecordStream(items: readonly RecordItem[]): Uint8Array {
  const parts: Uint8Array[] = [];
  for (const it of items) {
    parts.push(encodeRecord(it));
    if (it.raw !== undefined) parts.push(it.raw);
  }
  return Buffer.concat(parts);
}

/** Deep copy with every byte array replaced by its hex (so Buffer vs Uint8Array and views don't matter). */
export function norm(v: unknown): unknown {
  if (v instanceof Uint8Array)
    return `hex:${Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString("hex")}`;
  if (Array.isArray(v)) return v.map(norm);
  if (v !== null && typeof v === "object") {
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) out[k] = norm(x);
    return out;
  }
  return v;
}

/** Normalizes decoded events: consecutive checkpoint chunks become one `checkpointBytes` entry. */
export function normalizeEvents(events: readonly (MessageStreamEvent | RecordStreamEvent)[]): Normalized {
  const out: Normalized = [];
  let pending: Uint8Array[] | undefined;
  for (const ev of events) {
    if (ev.type === "checkpointChunk") {
      if (pending === undefined) pending = [];
      pending.push(ev.bytes);
      continue;
    }
    if (pending !== undefined) {
      out.push({ checkpointBytes: norm(Buffer.concat(pending)) });
      pending = undefined;
    }
    if (ev.type === "checkpointEnd") out.push("checkpointEnd");
    else if (ev.type === "record") out.push({ header: ev.header, messages: norm(ev.messages) });
    else out.push(norm(ev));
  }
  if (pending !== undefined) out.push({ checkpointBytes: norm(Buffer.concat(pending)) });
  return out;
}

export function expectedMessageEvents(items: readonly StreamItem[]): Normalized {
  const out: Normalized = [];
  for (const it of items) {
    out.push(norm(it.message));
    if (it.raw !== undefined) {
      if (it.raw.length > 0) out.push({ checkpointBytes: norm(it.raw) });
      out.push("checkpointEnd");
    }
  }
  return out;
}

export function expectedRecordEvents(items: readonly RecordItem[]): Normalized {
  const out: Normalized = [];
  for (const it of items) {
    const enc = encodeRecord(it);
    const checkBytes = Buffer.from(enc.buffer, enc.byteOffset + 8, 8).readBigUInt64LE();
    out.push({
      header: { committerId: it.committerId, length: enc.length, checkBytes, sequence: it.sequence },
      messages: norm(it.messages),
    });
    if (it.raw !== undefined) {
      if (it.raw.length > 0) out.push({ checkpointBytes: norm(it.raw) });
      out.push("checkpointEnd");
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Chunking and driving the push API

/** Splits `buf` at the given cut points (taken modulo its length + 1; duplicates make empty chunks). */
export function splitAt(buf: Uint8Array, cuts: readonly number[]): Uint8Array[] {
  const points = cuts.map((c) => c % (buf.length + 1)).sort((a, b) => a - b);
  const out: Uint8Array[] = [];
  let prev = 0;
  for (const c of points) {
    out.push(buf.subarray(prev, c));
    prev = c;
  }
  out.push(buf.subarray(prev));
  return out;
}

export function oneByteChunks(buf: Uint8Array): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let i = 0; i < buf.length; i++) out.push(buf.subarray(i, i + 1));
  return out;
}

export interface DecodeOutcome {
  readonly events: (MessageStreamEvent | RecordStreamEvent)[];
  /** The error thrown by push()/end(), if any. */
  readonly error?: unknown;
  /** The largest `bufferedBytes` seen after any push. */
  readonly maxBuffered: number;
}

export type DecoderSpec =
  | ({ mode: "messages" } & MessageDecoderOptions)
  | ({ mode: "records" } & RecordDecoderOptions);

/** Feeds `chunks` to a fresh decoder, then ends it; captures events and the first error. */
export function decodeChunks(spec: DecoderSpec, chunks: Iterable<Uint8Array>): DecodeOutcome {
  const events: (MessageStreamEvent | RecordStreamEvent)[] = [];
  const onEvent = (ev: MessageStreamEvent | RecordStreamEvent): void => {
    events.push(ev);
  };
  const dec = spec.mode === "messages" ? new MessageDecoder(onEvent, spec) : new RecordDecoder(onEvent, spec);
  let maxBuffered = 0;
  try {
    for (const c of chunks) {
      dec.push(c);
      maxBuffered = Math.max(maxBuffered, dec.bufferedBytes);
    }
    dec.end();
  } catch (error) {
    return { events, error, maxBuffered };
  }
  return { events, maxBuffered };
}
