/**
 * Shared test helpers: fast-check arbitraries for every message type, a normaliser for comparing decoded
 * messages (views into Buffers) with generated ones (plain Uint8Arrays), a typed-error assertion, and an
 * independent BigInt reference implementation of XXH64 and of ZigZag+LEB128 to check the codecs against.
 */
import fc from "fast-check";
import { expect } from "vitest";
import {
  type BatchableMessage,
  type Message,
  MessageType,
  type RpcLayout,
  type RpcType,
  WireError,
  type WireErrorCode,
} from "../src/index.js";

export const INT32_MIN = -0x80000000;
export const INT32_MAX = 0x7fffffff;
export const INT64_MIN = -(2n ** 63n);
export const INT64_MAX = 2n ** 63n - 1n;

export const hex = (s: string): Uint8Array => new Uint8Array(Buffer.from(s.replace(/\s+/g, ""), "hex"));
export const toHex = (b: Uint8Array): string =>
  Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString("hex");

/** Replaces every Uint8Array (including Buffers and views) by a plain number array, recursively. */
export function norm(x: unknown): unknown {
  if (x instanceof Uint8Array) return Array.from(x);
  if (Array.isArray(x)) return x.map(norm);
  if (x !== null && typeof x === "object") {
    return Object.fromEntries(Object.entries(x).map(([k, v]) => [k, norm(v)]));
  }
  return x;
}

/** Runs `fn`, which must throw a `WireError` with `code`; returns the error. */
export function expectWireError(fn: () => unknown, code: WireErrorCode): WireError {
  let thrown: unknown;
  try {
    fn();
  } catch (e) {
    thrown = e;
  }
  if (thrown === undefined) throw new Error(`expected WireError ${code}, but nothing was thrown`);
  expect(thrown).toBeInstanceOf(WireError);
  expect((thrown as WireError).code).toBe(code);
  return thrown as WireError;
}

/** Runs `fn`; anything it throws must be a `WireError` (a decoder never throws anything else). */
export function onlyWireErrors(fn: () => unknown): void {
  try {
    fn();
  } catch (e) {
    if (!(e instanceof WireError)) {
      throw new Error(`decoder threw a non-WireError: ${String(e)}`, { cause: e });
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Reference encodings (written from the spec, independent of src/)

/** ZigZag + LEB128 of an int32 (`bits` = 32) or int64 (`bits` = 64), computed with BigInt. */
export function refZigZag(value: bigint, bits: 32 | 64): number[] {
  const b = BigInt(bits);
  let z = BigInt.asUintN(bits, (value << 1n) ^ (value >> (b - 1n)));
  const out: number[] = [];
  while (z >= 0x80n) {
    out.push(Number(z & 0x7fn) | 0x80);
    z >>= 7n;
  }
  out.push(Number(z));
  return out;
}

/** Little-endian bytes of `value` as an n-byte two's-complement integer. */
export function refLE(value: bigint, n: number): number[] {
  let u = BigInt.asUintN(n * 8, value);
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    out.push(Number(u & 0xffn));
    u >>= 8n;
  }
  return out;
}

const M64 = (1n << 64n) - 1n;
const P1 = 11400714785074694791n;
const P2 = 14029467366897019727n;
const P3 = 1609587929392839161n;
const P4 = 9650029242287828579n;
const P5 = 2870177450012600261n;
const rotl = (x: bigint, r: bigint): bigint => ((x << r) | (x >> (64n - r))) & M64;
const round = (acc: bigint, input: bigint): bigint => (rotl((acc + input * P2) & M64, 31n) * P1) & M64;
const merge = (acc: bigint, v: bigint): bigint => ((acc ^ round(0n, v)) * P1 + P4) & M64;

function u64At(b: Uint8Array, i: number): bigint {
  let v = 0n;
  for (let k = 7; k >= 0; k--) v = (v << 8n) | BigInt(b[i + k]!);
  return v;
}
function u32At(b: Uint8Array, i: number): bigint {
  return BigInt((b[i]! | (b[i + 1]! << 8) | (b[i + 2]! << 16) | (b[i + 3]! << 24)) >>> 0);
}

/** Straightforward XXH64 (seed 0) from the published algorithm, in BigInt: slow but independent. */
export function refXxh64(b: Uint8Array, seed = 0n): bigint {
  const len = b.length;
  let i = 0;
  let h: bigint;
  if (len >= 32) {
    let v1 = (seed + P1 + P2) & M64;
    let v2 = (seed + P2) & M64;
    let v3 = seed;
    let v4 = (seed - P1) & M64;
    for (; i + 32 <= len; i += 32) {
      v1 = round(v1, u64At(b, i));
      v2 = round(v2, u64At(b, i + 8));
      v3 = round(v3, u64At(b, i + 16));
      v4 = round(v4, u64At(b, i + 24));
    }
    h = (rotl(v1, 1n) + rotl(v2, 7n) + rotl(v3, 12n) + rotl(v4, 18n)) & M64;
    h = merge(h, v1);
    h = merge(h, v2);
    h = merge(h, v3);
    h = merge(h, v4);
  } else {
    h = (seed + P5) & M64;
  }
  h = (h + BigInt(len)) & M64;
  for (; i + 8 <= len; i += 8) {
    h ^= round(0n, u64At(b, i));
    h = (rotl(h, 27n) * P1 + P4) & M64;
  }
  if (i + 4 <= len) {
    h ^= (u32At(b, i) * P1) & M64;
    h = (rotl(h, 23n) * P2 + P3) & M64;
    i += 4;
  }
  for (; i < len; i++) {
    h ^= (BigInt(b[i]!) * P5) & M64;
    h = (rotl(h, 11n) * P1) & M64;
  }
  h ^= h >> 33n;
  h = (h * P2) & M64;
  h ^= h >> 29n;
  h = (h * P3) & M64;
  h ^= h >> 32n;
  return h;
}

// ---------------------------------------------------------------------------------------------
// Arbitraries

export const int32 = fc.integer({ min: INT32_MIN, max: INT32_MAX });
export const int64 = fc.bigInt({ min: INT64_MIN, max: INT64_MAX });
/** Byte strings, mostly short, sometimes long enough for 2- and 3-byte size prefixes. */
export const bytes = fc.oneof(
  { weight: 4, arbitrary: fc.uint8Array({ maxLength: 40 }) },
  { weight: 1, arbitrary: fc.uint8Array({ minLength: 60, maxLength: 9000 }) },
);
/** Instance names: arbitrary Unicode (any code point but lone surrogates), ASCII, or empty (= self). */
export const destination = fc.oneof(
  fc.constant(""),
  fc.string({ unit: "binary", maxLength: 40 }),
  fc.string({ unit: "binary-ascii", minLength: 1, maxLength: 40 }),
  fc.string({ unit: "grapheme", minLength: 20, maxLength: 60 }),
);
const rpcType = fc.constantFrom<RpcType>(0, 1, 2);
const reserved = fc.integer({ min: 0, max: 255 });

export const incomingRpc = fc.record({
  type: fc.constant(MessageType.RPC),
  reserved,
  methodId: int32,
  rpcType,
  args: bytes,
});
export const outgoingRpc = fc.record({
  type: fc.constant(MessageType.RPC),
  destination,
  reserved,
  methodId: int32,
  rpcType,
  args: bytes,
});
export const attachTo = fc.record({ type: fc.constant(MessageType.AttachTo), destination });
export const controlMessage = fc
  .constantFrom(
    MessageType.TakeCheckpoint,
    MessageType.UpgradeTakeCheckpoint,
    MessageType.TakeBecomingPrimaryCheckpoint,
    MessageType.UpgradeService,
    MessageType.BecomingPrimary,
  )
  .map((type) => ({ type }));
export const commit = fc.record({ type: fc.constant(MessageType.Commit), seq: int64, replayableSeq: int64 });
export const replayFrom = fc.record({
  type: fc.constant(MessageType.ReplayFrom),
  seq: int64,
  replayableSeq: int64,
});
export const trimTo = fc.record({ type: fc.constant(MessageType.TrimTo), seq: int64 });
export const ping = fc.record({ type: fc.constant(MessageType.Ping), data: bytes });
export const pingReturn = fc.record({ type: fc.constant(MessageType.PingReturn), data: bytes });
export const initialMessage = fc.record({ type: fc.constant(MessageType.InitialMessage), data: bytes });
export const checkpoint = fc.record({
  type: fc.constant(MessageType.Checkpoint),
  length: fc.bigInt({ min: 0n, max: INT64_MAX }),
});

export const rpc = (layout: RpcLayout): fc.Arbitrary<Message> =>
  layout === "incoming" ? incomingRpc : outgoingRpc;

export const batchable = (layout: RpcLayout): fc.Arbitrary<BatchableMessage> =>
  fc.oneof(
    { weight: 4, arbitrary: rpc(layout) as fc.Arbitrary<BatchableMessage> },
    { weight: 1, arbitrary: ping },
    { weight: 1, arbitrary: pingReturn },
  );

export const rpcBatch = (layout: RpcLayout): fc.Arbitrary<Message> =>
  fc.array(batchable(layout), { maxLength: 8 }).map((messages) => ({ type: MessageType.RPCBatch, messages }));

export const countReplayableRpcBatch = (layout: RpcLayout): fc.Arbitrary<Message> =>
  fc
    .array(batchable(layout), { maxLength: 8 })
    .chain((messages) =>
      fc
        .integer({ min: 0, max: messages.length })
        .map((replayableCount) => ({ type: MessageType.CountReplayableRPCBatch, replayableCount, messages })),
    );

/** Any message of any type 0–15, with RPCs (also those inside batches) in the given layout. */
export const message = (layout: RpcLayout): fc.Arbitrary<Message> =>
  fc.oneof(
    rpc(layout),
    attachTo,
    controlMessage,
    commit,
    replayFrom,
    rpcBatch(layout),
    ping,
    pingReturn,
    checkpoint,
    initialMessage,
    countReplayableRpcBatch(layout),
    trimTo,
  );

/** Messages as they appear in a log record (IC → binding): the incoming layout. */
export const recordMessages = fc.array(message("incoming"), { maxLength: 6 });
