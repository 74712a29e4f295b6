import { WireError } from "./errors.js";
import { readUtf8, utf8Length, writeUtf8 } from "./utf8.js";
import {
  assertInt32,
  NEED_MORE,
  tryReadZigZagInt,
  tryReadZigZagLong,
  type VarintResult,
  writeZigZagInt,
  writeZigZagLong,
  zigZagIntSize,
  zigZagLongSize,
} from "./varint.js";

/** Message type bytes (spec: client-protocol.md §Messages). */
export const MessageType = {
  RPC: 0,
  AttachTo: 1,
  TakeCheckpoint: 2,
  Commit: 3,
  ReplayFrom: 4,
  RPCBatch: 5,
  Ping: 6,
  PingReturn: 7,
  Checkpoint: 8,
  InitialMessage: 9,
  UpgradeTakeCheckpoint: 10,
  TakeBecomingPrimaryCheckpoint: 11,
  UpgradeService: 12,
  CountReplayableRPCBatch: 13,
  TrimTo: 14,
  BecomingPrimary: 15,
} as const;
export type MessageType = (typeof MessageType)[keyof typeof MessageType];

/** The RPC type byte inside an RPC. Only `Impulse` is special to a coordinator (not replayable). */
export const RpcType = { AsyncAwait: 0, Fork: 1, Impulse: 2 } as const;
export type RpcType = (typeof RpcType)[keyof typeof RpcType];

/**
 * Which RPC layout a byte stream carries. The same type byte 0 has two layouts:
 * - `incoming`: IC → binding (inside log records) and IC ↔ IC: no destination;
 * - `outgoing`: binding → IC: destination name first (empty = self-call).
 */
export type RpcLayout = "incoming" | "outgoing";

/** An RPC as the binding receives it. `args` is a view into the decoded buffer (not a copy). */
export interface IncomingRpc {
  readonly type: typeof MessageType.RPC;
  /** Byte 0 of the data: 0 = RPC, 1 = return value (reserved; carried through unchanged). */
  readonly reserved: number;
  readonly methodId: number;
  readonly rpcType: RpcType;
  readonly args: Uint8Array;
}

/** An RPC as the binding sends it: an incoming RPC plus its destination (`""` = self-call). */
export interface OutgoingRpc extends IncomingRpc {
  readonly destination: string;
}

export type Rpc = IncomingRpc | OutgoingRpc;

export interface AttachTo {
  readonly type: typeof MessageType.AttachTo;
  readonly destination: string;
}
/** IC ↔ IC: the receiver's durable watermark (AMBROSIA: `[vl seq][vl replayableSeq]`). */
export interface Commit {
  readonly type: typeof MessageType.Commit;
  readonly seq: bigint;
  readonly replayableSeq: bigint;
}
/** IC ↔ IC: where the sender must resume (AMBROSIA: `[vl seq][vl replayableSeq]`). */
export interface ReplayFrom {
  readonly type: typeof MessageType.ReplayFrom;
  readonly seq: bigint;
  readonly replayableSeq: bigint;
}
/** IC ↔ IC: how far the peer has trimmed (AMBROSIA: `[vl seq]`). */
export interface TrimTo {
  readonly type: typeof MessageType.TrimTo;
  readonly seq: bigint;
}
/** Messages that may stand inside a batch. */
export type BatchableMessage = Rpc | Ping | PingReturn;
export interface RPCBatch {
  readonly type: typeof MessageType.RPCBatch;
  readonly messages: readonly BatchableMessage[];
}
export interface CountReplayableRPCBatch {
  readonly type: typeof MessageType.CountReplayableRPCBatch;
  /** How many of `messages` are not Impulses. */
  readonly replayableCount: number;
  readonly messages: readonly BatchableMessage[];
}
export interface Ping {
  readonly type: typeof MessageType.Ping;
  readonly data: Uint8Array;
}
export interface PingReturn {
  readonly type: typeof MessageType.PingReturn;
  readonly data: Uint8Array;
}
/** Announces `length` raw checkpoint bytes that follow the frame, outside any framing. */
export interface Checkpoint {
  readonly type: typeof MessageType.Checkpoint;
  readonly length: bigint;
}
export interface InitialMessage {
  readonly type: typeof MessageType.InitialMessage;
  readonly data: Uint8Array;
}
export interface ControlMessage<T extends ControlType = ControlType> {
  readonly type: T;
}
/** The message types that carry no data. */
export type ControlType =
  | typeof MessageType.TakeCheckpoint
  | typeof MessageType.UpgradeTakeCheckpoint
  | typeof MessageType.TakeBecomingPrimaryCheckpoint
  | typeof MessageType.UpgradeService
  | typeof MessageType.BecomingPrimary;

export type Message =
  | Rpc
  | AttachTo
  | ControlMessage
  | Commit
  | ReplayFrom
  | RPCBatch
  | Ping
  | PingReturn
  | Checkpoint
  | InitialMessage
  | CountReplayableRPCBatch
  | TrimTo;

const CONTROL_TYPES: ReadonlySet<number> = new Set([2, 10, 11, 12, 15]);

export function isControlType(type: number): type is ControlType {
  return CONTROL_TYPES.has(type);
}

/** Frames larger than this are refused unless a caller sets its own limit. */
export const DEFAULT_MAX_FRAME_SIZE = 256 * 1024 * 1024;

// ---------------------------------------------------------------------------------------------
// Encoding

/** Body size (type byte onward) of an RPC; `destinationLength` undefined for the incoming layout. */
function rpcBodyLength(destinationLength: number | undefined, methodId: number, argsLength: number): number {
  const n = 1 + 1 + zigZagIntSize(methodId) + 1 + argsLength; // type, reserved, methodId, rpcType, args
  return destinationLength === undefined ? n : n + zigZagIntSize(destinationLength) + destinationLength;
}

function rpcBodySize(m: Rpc): number {
  const d = "destination" in m ? utf8Length(m.destination) : undefined;
  return rpcBodyLength(d, m.methodId, m.args.length);
}

/** Size of the frame body: the type byte plus data (what the size prefix counts). */
function bodySize(m: Message): number {
  switch (m.type) {
    case MessageType.RPC:
      return rpcBodySize(m);
    case MessageType.AttachTo:
      return 1 + utf8Length(m.destination);
    case MessageType.Commit:
    case MessageType.ReplayFrom:
      return 1 + zigZagLongSize(m.seq) + zigZagLongSize(m.replayableSeq);
    case MessageType.TrimTo:
      return 1 + zigZagLongSize(m.seq);
    case MessageType.RPCBatch: {
      let n = 1 + zigZagIntSize(m.messages.length);
      for (const inner of m.messages) n += messageSize(inner);
      return n;
    }
    case MessageType.CountReplayableRPCBatch: {
      let n = 1 + zigZagIntSize(m.messages.length) + zigZagIntSize(m.replayableCount);
      for (const inner of m.messages) n += messageSize(inner);
      return n;
    }
    case MessageType.Ping:
    case MessageType.PingReturn:
    case MessageType.InitialMessage:
      return 1 + m.data.length;
    case MessageType.Checkpoint:
      return 1 + zigZagLongSize(m.length);
    default:
      return 1;
  }
}

/** Total encoded size of `m`: size prefix, type byte and data. */
export function messageSize(m: Message): number {
  const body = bodySize(m);
  return zigZagIntSize(body) + body;
}

function checkRpcFields(m: { readonly reserved: number; readonly rpcType: number }): void {
  if (!Number.isInteger(m.reserved) || m.reserved < 0 || m.reserved > 255) {
    throw new WireError("OUT_OF_RANGE", `reserved byte ${m.reserved} is not a byte`);
  }
  if (m.rpcType !== 0 && m.rpcType !== 1 && m.rpcType !== 2) {
    throw new WireError("MALFORMED", `RPC type ${String(m.rpcType)} is not 0, 1 or 2`);
  }
}

/** Copies `src` to `buf` at `p`: byte by byte when short, where a call to `set` costs more than the copy. */
function put(buf: Uint8Array, p: number, src: Uint8Array): number {
  const n = src.length;
  if (n <= 32) for (let i = 0; i < n; i++) buf[p + i] = src[i]!;
  else buf.set(src, p);
  return p + n;
}

/**
 * Encoded size of an outgoing-layout RPC whose destination is `destinationLength` UTF-8 bytes: what `messageSize`
 * gives for it, without a message object (a binding frames every RPC it sends; see {@link writeOutgoingRpc}).
 */
export function outgoingRpcSize(destinationLength: number, methodId: number, argsLength: number): number {
  const body = rpcBodyLength(destinationLength, methodId, argsLength);
  return zigZagIntSize(body) + body;
}

/**
 * Writes an outgoing-layout RPC at `offset`, the same bytes `writeMessage` writes for it, with the destination
 * given as its UTF-8 bytes (a binding encodes each destination once, not once per RPC). Returns the offset after
 * it; the caller guarantees `outgoingRpcSize(…)` bytes of room. Throws `WireError` for a reserved byte, method ID or
 * RPC type out of range, before writing anything.
 */
export function writeOutgoingRpc(
  buf: Uint8Array,
  offset: number,
  destination: Uint8Array,
  reserved: number,
  methodId: number,
  rpcType: RpcType,
  args: Uint8Array,
): number {
  checkRpcFields({ reserved, rpcType });
  assertInt32(methodId);
  const d = destination.length;
  let p = writeZigZagInt(buf, offset, rpcBodyLength(d, methodId, args.length));
  buf[p++] = MessageType.RPC;
  p = writeZigZagInt(buf, p, d);
  p = put(buf, p, destination);
  buf[p++] = reserved;
  p = writeZigZagInt(buf, p, methodId);
  buf[p++] = rpcType;
  return put(buf, p, args);
}

/** Writes `m` at `offset`; returns the offset after it. The caller guarantees `messageSize(m)` bytes of room. */
export function writeMessage(buf: Uint8Array, offset: number, m: Message): number {
  const body = bodySize(m);
  let p = writeZigZagInt(buf, offset, body);
  buf[p++] = m.type;
  switch (m.type) {
    case MessageType.RPC: {
      checkRpcFields(m);
      if ("destination" in m) {
        const d = utf8Length(m.destination);
        p = writeZigZagInt(buf, p, d);
        p = writeUtf8(buf, p, m.destination, d);
      }
      buf[p++] = m.reserved;
      p = writeZigZagInt(buf, p, m.methodId);
      buf[p++] = m.rpcType;
      buf.set(m.args, p);
      return p + m.args.length;
    }
    case MessageType.AttachTo:
      return writeUtf8(buf, p, m.destination, utf8Length(m.destination));
    case MessageType.Commit:
    case MessageType.ReplayFrom:
      p = writeZigZagLong(buf, p, m.seq);
      return writeZigZagLong(buf, p, m.replayableSeq);
    case MessageType.TrimTo:
      return writeZigZagLong(buf, p, m.seq);
    case MessageType.RPCBatch:
    case MessageType.CountReplayableRPCBatch: {
      p = writeZigZagInt(buf, p, m.messages.length);
      if (m.type === MessageType.CountReplayableRPCBatch) {
        if (m.replayableCount < 0 || m.replayableCount > m.messages.length) {
          throw new WireError(
            "OUT_OF_RANGE",
            `replayable count ${m.replayableCount} outside 0..${m.messages.length}`,
          );
        }
        p = writeZigZagInt(buf, p, m.replayableCount);
      }
      for (const inner of m.messages) {
        assertBatchable(inner.type, p);
        p = writeMessage(buf, p, inner);
      }
      return p;
    }
    case MessageType.Ping:
    case MessageType.PingReturn:
    case MessageType.InitialMessage:
      buf.set(m.data, p);
      return p + m.data.length;
    case MessageType.Checkpoint:
      if (m.length < 0n) throw new WireError("NEGATIVE_LENGTH", `checkpoint length ${m.length}`);
      return writeZigZagLong(buf, p, m.length);
    default:
      if (!isControlType(m.type)) throw new WireError("UNKNOWN_TYPE", `message type ${String(m.type)}`);
      return p;
  }
}

/** Encodes one message into a new buffer. */
export function encodeMessage(m: Message): Uint8Array {
  const out = Buffer.allocUnsafe(messageSize(m));
  writeMessage(out, 0, m);
  return out;
}

/** Encodes messages packed tightly, as a binding writes them to its coordinator. */
export function encodeMessages(ms: readonly Message[]): Uint8Array {
  let n = 0;
  for (const m of ms) n += messageSize(m);
  const out = Buffer.allocUnsafe(n);
  let p = 0;
  for (const m of ms) p = writeMessage(out, p, m);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Decoding

function assertBatchable(type: number, offset: number): void {
  if (type !== MessageType.RPC && type !== MessageType.Ping && type !== MessageType.PingReturn) {
    throw new WireError("UNKNOWN_TYPE", `message type ${type} may not stand inside a batch`, offset);
  }
}

const sizeSlot: VarintResult = { value: 0, next: 0 };

/**
 * Where the frame starting at `offset` ends, or `NEED_MORE` (−1) if `[offset, end)` does not yet hold it all.
 * Validates the size prefix: negative → `NEGATIVE_LENGTH`, zero → `MALFORMED`, over `maxFrameSize` →
 * `FRAME_TOO_LARGE` (checked before the body arrives, so a huge size is refused without buffering it).
 */
export function frameEnd(
  buf: Uint8Array,
  offset: number,
  end: number,
  maxFrameSize = DEFAULT_MAX_FRAME_SIZE,
): number {
  if (tryReadZigZagInt(buf, offset, end, sizeSlot) === NEED_MORE) return NEED_MORE;
  const size = sizeSlot.value;
  if (size < 0) throw new WireError("NEGATIVE_LENGTH", `frame size ${size}`, offset);
  if (size === 0) throw new WireError("MALFORMED", "frame size 0 leaves no room for the type byte", offset);
  if (size > maxFrameSize) {
    throw new WireError(
      "FRAME_TOO_LARGE",
      `frame of ${size} bytes exceeds the limit of ${maxFrameSize}`,
      offset,
    );
  }
  const e = sizeSlot.next + size;
  return e <= end ? e : NEED_MORE;
}

const slot: VarintResult = { value: 0, next: 0 };

function readInt(buf: Uint8Array, p: number, end: number, what: string): number {
  if (tryReadZigZagInt(buf, p, end, slot) === NEED_MORE) {
    throw new WireError("TRUNCATED", `${what} extends past the end of its frame`, p);
  }
  return slot.value;
}

function readLong(buf: Uint8Array, p: number, end: number, what: string): [bigint, number] {
  const r = tryReadZigZagLong(buf, p, end);
  if (r === undefined) throw new WireError("TRUNCATED", `${what} extends past the end of its frame`, p);
  return r;
}

function expectEnd(p: number, end: number, what: string): void {
  if (p !== end) throw new WireError("MALFORMED", `${end - p} trailing bytes after ${what}`, p);
}

/**
 * Where one RPC frame's fields lie, as {@link scanRpcFrame} finds them. A forwarder reuses one span for every RPC
 * of a stream, so validating and re-framing an RPC allocates no object per message (the coordinator forwards
 * its binding's RPCs this way instead of decoding them into objects and encoding them again).
 */
export interface RpcSpan {
  /** Start of the frame (its size prefix). */
  start: number;
  /** `[destStart, destEnd)`: the destination's UTF-8 bytes (outgoing layout; an empty range for incoming). */
  destStart: number;
  destEnd: number;
  /** Offset of the reserved byte. `[bodyStart, end)` is what both layouts share: reserved, method ID, type, args. */
  bodyStart: number;
  methodId: number;
  rpcType: RpcType;
  /** `[argsStart, end)`: the arguments. */
  argsStart: number;
  /** End of the frame. */
  end: number;
}

/** A fresh span to pass to {@link scanRpcFrame}. */
export function rpcSpan(): RpcSpan {
  return { start: 0, destStart: 0, destEnd: 0, bodyStart: 0, methodId: 0, rpcType: 0, argsStart: 0, end: 0 };
}

/** Fills `span` from the RPC data `[p, end)` (after the type byte), with every check `decodeMessage` makes. */
function scanRpcData(buf: Uint8Array, p: number, end: number, layout: RpcLayout, span: RpcSpan): RpcSpan {
  span.destStart = span.destEnd = p;
  if (layout === "outgoing") {
    const destLen = readInt(buf, p, end, "destination length");
    p = slot.next;
    if (destLen < 0) throw new WireError("NEGATIVE_LENGTH", `destination length ${destLen}`, p);
    if (p + destLen > end)
      throw new WireError("TRUNCATED", "destination extends past the end of its frame", p);
    span.destStart = p;
    p += destLen;
    span.destEnd = p;
  }
  if (p >= end) throw new WireError("TRUNCATED", "RPC has no reserved byte", p);
  span.bodyStart = p++;
  span.methodId = readInt(buf, p, end, "method ID");
  p = slot.next;
  if (p >= end) throw new WireError("TRUNCATED", "RPC has no RPC-type byte", p);
  const rpcType = buf[p]!;
  if (rpcType > 2) throw new WireError("MALFORMED", `RPC type ${rpcType} is not 0, 1 or 2`, p);
  span.rpcType = rpcType as RpcType;
  span.argsStart = p + 1;
  span.end = end;
  return span;
}

/**
 * Validates that `[start, end)` is exactly one RPC frame in `layout`, with the checks `decodeMessage` makes, and
 * fills `span` with where its fields lie instead of building an object. The destination's bytes are located but
 * not decoded: read them with `readUtf8`, which refuses invalid UTF-8 as `decodeMessage` does.
 */
export function scanRpcFrame(
  buf: Uint8Array,
  start: number,
  end: number,
  layout: RpcLayout,
  span: RpcSpan,
  maxFrameSize: number = DEFAULT_MAX_FRAME_SIZE,
): RpcSpan {
  const e = frameEnd(buf, start, end, maxFrameSize);
  if (e === NEED_MORE) throw new WireError("TRUNCATED", "input ends inside a frame", start);
  const typeAt = sizeSlot.next;
  if (e !== end) throw new WireError("MALFORMED", `${end - e} trailing bytes after an RPC`, e);
  if (buf[typeAt] !== MessageType.RPC) {
    throw new WireError("UNKNOWN_TYPE", `message type ${buf[typeAt]} where an RPC must stand`, typeAt);
  }
  span.start = start;
  return scanRpcData(buf, typeAt + 1, end, layout, span);
}

/**
 * Turns the outgoing-layout RPC in `span` into its incoming-layout frame in place and returns a view of it: the
 * new size prefix and type byte are written over the tail of the old prefix and the destination, so the shared
 * part (reserved byte onward) is not copied. The incoming frame is never longer than the outgoing one: its size
 * is smaller, so its prefix is no longer, and the outgoing frame has at least the destination-length byte to
 * spare. The view aliases `buf`; the outgoing frame's bytes are gone afterwards.
 */
export function rewriteAsIncoming(buf: Uint8Array, span: RpcSpan): Uint8Array {
  const size = 1 + (span.end - span.bodyStart);
  const typeAt = span.bodyStart - 1;
  const at = typeAt - zigZagIntSize(size);
  if (at < span.start) throw new WireError("MALFORMED", "not an outgoing-layout RPC span", span.start);
  writeZigZagInt(buf, at, size);
  buf[typeAt] = MessageType.RPC;
  return buf.subarray(at, span.end);
}

/**
 * The incoming-layout frame of the RPC in `span`, as a fresh buffer (`buf` is left as it is): for an RPC whose view
 * should not keep the rest of `buf` alive, e.g. a large one, where the copy is cheap beside the RPC's own size.
 */
export function copyAsIncoming(buf: Uint8Array, span: RpcSpan): Uint8Array {
  const size = 1 + (span.end - span.bodyStart);
  const out = Buffer.allocUnsafe(zigZagIntSize(size) + size);
  const p = writeZigZagInt(out, 0, size);
  out[p] = MessageType.RPC;
  out.set(buf.subarray(span.bodyStart, span.end), p + 1);
  return out;
}

const spanSlot = rpcSpan();

function decodeRpc(buf: Uint8Array, p: number, end: number, layout: RpcLayout): Rpc {
  const s = scanRpcData(buf, p, end, layout, spanSlot);
  const reserved = buf[s.bodyStart]!;
  const { methodId, rpcType } = s;
  const args = buf.subarray(s.argsStart, end);
  if (layout === "incoming") return { type: 0, reserved, methodId, rpcType, args };
  const destination = s.destEnd === s.destStart ? "" : readUtf8(buf, s.destStart, s.destEnd);
  return { type: 0, destination, reserved, methodId, rpcType, args };
}

/**
 * Calls `visit(start, end)` for each item of the batch whose body (type byte onward) is `[typeAt, end)`, in order,
 * without decoding the items: the framing checks `decodeMessage` makes (count, sizes, batchable types, no
 * trailing bytes) are made, each item's own contents are left to `visit` (e.g. {@link scanRpcFrame}).
 */
export function forEachBatchItem(
  buf: Uint8Array,
  typeAt: number,
  end: number,
  visit: (start: number, end: number) => void,
  maxFrameSize: number = DEFAULT_MAX_FRAME_SIZE,
): void {
  const type = buf[typeAt];
  if (type !== MessageType.RPCBatch && type !== MessageType.CountReplayableRPCBatch) {
    throw new WireError("UNKNOWN_TYPE", `message type ${type} is not a batch`, typeAt);
  }
  const p = readBatchHead(buf, typeAt, end);
  const { count } = batchHead;
  walkBatchItems(buf, p, end, count, maxFrameSize, (start, _typeAt, e) => visit(start, e));
}

/** What {@link readBatchHead} read last (module-level, like the varint slots: no object per batch). */
const batchHead = { count: 0, replayableCount: 0 };

/**
 * Reads a batch's head, the count (and for a CountReplayableRPCBatch the replayable count, which must lie in
 * `[0, count]`), into {@link batchHead}; returns where the items start. The count itself is checked by
 * `walkBatchItems`.
 */
function readBatchHead(buf: Uint8Array, typeAt: number, end: number): number {
  let p = typeAt + 1;
  const count = readInt(buf, p, end, "batch count");
  p = slot.next;
  let replayableCount = 0;
  if (buf[typeAt] === MessageType.CountReplayableRPCBatch) {
    if (count < 0) throw new WireError("NEGATIVE_LENGTH", `batch count ${count}`, p);
    replayableCount = readInt(buf, p, end, "replayable count");
    p = slot.next;
    if (replayableCount < 0) throw new WireError("NEGATIVE_LENGTH", `replayable count ${replayableCount}`, p);
    if (replayableCount > count) {
      throw new WireError("MALFORMED", `replayable count ${replayableCount} exceeds batch count ${count}`, p);
    }
  }
  batchHead.count = count;
  batchHead.replayableCount = replayableCount;
  return p;
}

/**
 * The batch framing both decoding and {@link forEachBatchItem} check: a count that fits the bytes, whole items of
 * batchable types, nothing after the last. `visit(start, typeAt, end)` gets each item's frame, in order.
 */
function walkBatchItems(
  buf: Uint8Array,
  p: number,
  end: number,
  count: number,
  maxFrameSize: number,
  visit: (start: number, typeAt: number, end: number) => void,
): void {
  if (count < 0) throw new WireError("NEGATIVE_LENGTH", `batch count ${count}`, p);
  // Each inner message takes at least 2 bytes, so a count beyond that is a lie: refuse before allocating.
  if (count > (end - p) / 2) throw new WireError("MALFORMED", `batch count ${count} exceeds its bytes`, p);
  for (let i = 0; i < count; i++) {
    if (p >= end) throw new WireError("MALFORMED", `batch count ${count} but only ${i} items`, p);
    const e = frameEnd(buf, p, end, maxFrameSize);
    if (e === NEED_MORE)
      throw new WireError("TRUNCATED", `batch item ${i} extends past the end of the batch`, p);
    const typeAt = sizeSlot.next;
    assertBatchable(buf[typeAt]!, typeAt);
    visit(p, typeAt, e);
    p = e;
  }
  expectEnd(p, end, `a batch of ${count}`);
}

function decodeBatchItems(
  buf: Uint8Array,
  p: number,
  end: number,
  count: number,
  layout: RpcLayout,
  maxFrameSize: number,
): BatchableMessage[] {
  const items: BatchableMessage[] = [];
  walkBatchItems(buf, p, end, count, maxFrameSize, (_start, typeAt, e) => {
    items.push(decodeBody(buf, typeAt, e, layout, maxFrameSize) as BatchableMessage);
  });
  return items;
}

/** Decodes the body `[type][data]` occupying exactly `[typeAt, end)`. */
function decodeBody(
  buf: Uint8Array,
  typeAt: number,
  end: number,
  layout: RpcLayout,
  maxFrameSize: number,
): Message {
  const type = buf[typeAt]!;
  let p = typeAt + 1;
  switch (type) {
    case MessageType.RPC:
      return decodeRpc(buf, p, end, layout);
    case MessageType.AttachTo:
      return { type, destination: readUtf8(buf, p, end) };
    case MessageType.Commit:
    case MessageType.ReplayFrom: {
      const [seq, p1] = readLong(buf, p, end, "sequence number");
      const [replayableSeq, p2] = readLong(buf, p1, end, "replayable sequence number");
      expectEnd(p2, end, type === MessageType.Commit ? "Commit" : "ReplayFrom");
      return { type, seq, replayableSeq };
    }
    case MessageType.TrimTo: {
      const [seq, p1] = readLong(buf, p, end, "trim sequence number");
      expectEnd(p1, end, "TrimTo");
      return { type, seq };
    }
    case MessageType.RPCBatch: {
      p = readBatchHead(buf, typeAt, end);
      return { type, messages: decodeBatchItems(buf, p, end, batchHead.count, layout, maxFrameSize) };
    }
    case MessageType.CountReplayableRPCBatch: {
      p = readBatchHead(buf, typeAt, end);
      const { count, replayableCount } = batchHead;
      return { type, replayableCount, messages: decodeBatchItems(buf, p, end, count, layout, maxFrameSize) };
    }
    case MessageType.Ping:
    case MessageType.PingReturn:
    case MessageType.InitialMessage:
      return { type, data: buf.subarray(p, end) };
    case MessageType.Checkpoint: {
      const [length, p1] = readLong(buf, p, end, "checkpoint length");
      if (length < 0n) throw new WireError("NEGATIVE_LENGTH", `checkpoint length ${length}`, p);
      expectEnd(p1, end, "Checkpoint");
      return { type, length };
    }
    default:
      if (!isControlType(type)) throw new WireError("UNKNOWN_TYPE", `message type ${type}`, typeAt);
      expectEnd(p, end, `control message ${type}`);
      return { type };
  }
}

/** A decoded message and the offset just after its frame. */
export interface Decoded<M = Message> {
  readonly message: M;
  readonly next: number;
}

/**
 * Decodes the frame at `offset`. Throws `TRUNCATED` if `[offset, end)` ends inside it; use `frameEnd`
 * first to test completeness when bytes arrive in chunks. Views (`args`, `data`) alias `buf`.
 */
export function decodeMessage(
  buf: Uint8Array,
  offset: number,
  layout: RpcLayout,
  end: number = buf.length,
  maxFrameSize: number = DEFAULT_MAX_FRAME_SIZE,
): Decoded {
  const e = frameEnd(buf, offset, end, maxFrameSize);
  if (e === NEED_MORE) throw new WireError("TRUNCATED", "input ends inside a frame", offset);
  return { message: decodeBody(buf, sizeSlot.next, e, layout, maxFrameSize), next: e };
}

/** Decodes a byte range that must consist of whole messages packed tightly (e.g. a record's payload). */
export function decodeMessages(
  buf: Uint8Array,
  layout: RpcLayout,
  start = 0,
  end: number = buf.length,
  maxFrameSize: number = DEFAULT_MAX_FRAME_SIZE,
): Message[] {
  const out: Message[] = [];
  let p = start;
  while (p < end) {
    const e = frameEnd(buf, p, end, maxFrameSize);
    if (e === NEED_MORE) throw new WireError("TRUNCATED", "input ends inside a frame", p);
    out.push(decodeBody(buf, sizeSlot.next, e, layout, maxFrameSize));
    p = e;
  }
  return out;
}
