import { WireError } from "./errors.js";

/**
 * ZigZag + LEB128 varints, exactly as AMBROSIA's `WriteInt`/`WriteLong` (spec: client-protocol.md §Encodings).
 * Plain LEB128 would be wrong: AMBROSIA zig-zags every varint, sizes and counts included.
 */

export const MAX_ZIGZAG_INT_BYTES = 5;
export const MAX_ZIGZAG_LONG_BYTES = 10;

const INT32_MIN = -0x80000000;
const INT32_MAX = 0x7fffffff;
const INT64_MIN = -(1n << 63n);
const INT64_MAX = (1n << 63n) - 1n;

/** Throws `OUT_OF_RANGE` unless `value` is a 32-bit signed integer (module-internal: not in the index). */
export function assertInt32(value: number): void {
  if (!Number.isInteger(value) || value < INT32_MIN || value > INT32_MAX) {
    throw new WireError("OUT_OF_RANGE", `${value} is not a 32-bit signed integer`);
  }
}

/** Number of bytes `writeZigZagInt(value)` produces. */
export function zigZagIntSize(value: number): number {
  const z = ((value << 1) ^ (value >> 31)) >>> 0;
  if (z < 0x80) return 1;
  if (z < 0x4000) return 2;
  if (z < 0x200000) return 3;
  if (z < 0x10000000) return 4;
  return 5;
}

/** Writes `value` (an int32) at `offset`; returns the offset after it. The caller guarantees room. */
export function writeZigZagInt(buf: Uint8Array, offset: number, value: number): number {
  assertInt32(value);
  let z = ((value << 1) ^ (value >> 31)) >>> 0;
  while (z >= 0x80) {
    buf[offset++] = (z & 0x7f) | 0x80;
    z >>>= 7;
  }
  buf[offset++] = z;
  return offset;
}

/**
 * Result slot for the allocation-free readers: the decoded value and the offset after it.
 * Hot paths (frame parsing at millions of messages per second) reuse one of these instead of allocating.
 */
export interface VarintResult {
  value: number;
  next: number;
}

/** Sentinel returned by `tryReadZigZagInt` when the input ends inside the varint. */
export const NEED_MORE = -1;

/**
 * Reads a ZigZagInt at `offset` (bounded by `end`) into `out`.
 * Returns `out.next`, or `NEED_MORE` if the varint is incomplete; throws `WireError` if it is invalid.
 */
export function tryReadZigZagInt(buf: Uint8Array, offset: number, end: number, out: VarintResult): number {
  let z = 0;
  let shift = 0;
  let pos = offset;
  for (;;) {
    if (pos >= end) return NEED_MORE;
    const b = buf[pos++]!;
    if (shift === 28) {
      if (b & 0x80) throw new WireError("VARINT_TOO_LONG", "ZigZagInt longer than 5 bytes", offset);
      if (b > 0x0f) throw new WireError("OUT_OF_RANGE", "ZigZagInt has bits beyond 32", offset);
      z = (z | (b << 28)) >>> 0;
      break;
    }
    z |= (b & 0x7f) << shift;
    if ((b & 0x80) === 0) break;
    shift += 7;
  }
  out.value = (z >>> 1) ^ -(z & 1);
  out.next = pos;
  return pos;
}

const scratch: VarintResult = { value: 0, next: 0 };

/** Reads a ZigZagInt; throws `TRUNCATED` if the input ends inside it. Returns `[value, nextOffset]`. */
export function readZigZagInt(buf: Uint8Array, offset: number, end: number = buf.length): [number, number] {
  if (tryReadZigZagInt(buf, offset, end, scratch) === NEED_MORE) {
    throw new WireError("TRUNCATED", "input ends inside a ZigZagInt", offset);
  }
  return [scratch.value, scratch.next];
}

function assertInt64(value: bigint): void {
  if (value < INT64_MIN || value > INT64_MAX) {
    throw new WireError("OUT_OF_RANGE", `${value} is not a 64-bit signed integer`);
  }
}

function zigZag64(value: bigint): bigint {
  return BigInt.asUintN(64, (value << 1n) ^ (value >> 63n));
}

/** Number of bytes `writeZigZagLong(value)` produces. */
export function zigZagLongSize(value: bigint): number {
  assertInt64(value);
  let z = zigZag64(value);
  let n = 1;
  while (z >= 0x80n) {
    z >>= 7n;
    n++;
  }
  return n;
}

/** Writes `value` (an int64, exact over the whole range) at `offset`; returns the offset after it. */
export function writeZigZagLong(buf: Uint8Array, offset: number, value: bigint): number {
  assertInt64(value);
  const z = zigZag64(value);
  // Emit from 32-bit halves: one BigInt split instead of a BigInt shift per byte.
  let lo = Number(z & 0xffffffffn);
  let hi = Number(z >> 32n);
  while (hi !== 0 || lo >= 0x80) {
    buf[offset++] = (lo & 0x7f) | 0x80;
    lo = ((lo >>> 7) | ((hi & 0x7f) << 25)) >>> 0;
    hi >>>= 7;
  }
  buf[offset++] = lo;
  return offset;
}

/**
 * Reads a ZigZagLong at `offset`. Returns `[value, next]`, or `undefined` if the input ends inside it.
 * Throws `VARINT_TOO_LONG` past 10 bytes and `OUT_OF_RANGE` for bits beyond 64.
 */
export function tryReadZigZagLong(
  buf: Uint8Array,
  offset: number,
  end: number,
): [bigint, number] | undefined {
  // Accumulate 7-bit groups in two 32-bit halves to avoid BigInt work per byte.
  let lo = 0;
  let hi = 0;
  let pos = offset;
  for (let i = 0; ; i++) {
    if (pos >= end) return undefined;
    const b = buf[pos++]!;
    const bits = b & 0x7f;
    if (i === 9) {
      if (b & 0x80) throw new WireError("VARINT_TOO_LONG", "ZigZagLong longer than 10 bytes", offset);
      if (b > 0x01) throw new WireError("OUT_OF_RANGE", "ZigZagLong has bits beyond 64", offset);
    }
    const shift = i * 7;
    if (shift < 28) {
      lo |= bits << shift;
    } else if (shift === 28) {
      lo |= (bits & 0x0f) << 28;
      hi |= bits >>> 4;
    } else {
      hi |= bits << (shift - 32);
    }
    if ((b & 0x80) === 0) break;
  }
  const z = (BigInt(hi >>> 0) << 32n) | BigInt(lo >>> 0);
  const value = (z >> 1n) ^ -(z & 1n);
  return [value, pos];
}

/** Reads a ZigZagLong; throws `TRUNCATED` if the input ends inside it. */
export function readZigZagLong(buf: Uint8Array, offset: number, end: number = buf.length): [bigint, number] {
  const r = tryReadZigZagLong(buf, offset, end);
  if (r === undefined) throw new WireError("TRUNCATED", "input ends inside a ZigZagLong", offset);
  return r;
}
