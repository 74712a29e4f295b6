import { WireError } from "./errors.js";

/** IntFixed / LongFixed: little-endian, as AMBROSIA's `WriteIntFixed`/`WriteLongFixed`. */

export function writeIntFixed(buf: Uint8Array, offset: number, value: number): number {
  if (!Number.isInteger(value) || value < -0x80000000 || value > 0xffffffff) {
    throw new WireError("OUT_OF_RANGE", `${value} does not fit 32 bits`);
  }
  buf[offset] = value & 0xff;
  buf[offset + 1] = (value >>> 8) & 0xff;
  buf[offset + 2] = (value >>> 16) & 0xff;
  buf[offset + 3] = (value >>> 24) & 0xff;
  return offset + 4;
}

export function readIntFixed(buf: Uint8Array, offset: number): number {
  if (offset + 4 > buf.length) throw new WireError("TRUNCATED", "input ends inside an IntFixed", offset);
  return buf[offset]! | (buf[offset + 1]! << 8) | (buf[offset + 2]! << 16) | (buf[offset + 3]! << 24);
}

/** Writes a LongFixed given as a bigint (signed or unsigned 64-bit). */
export function writeLongFixed(buf: Uint8Array, offset: number, value: bigint): number {
  if (value < -(1n << 63n) || value >= 1n << 64n) {
    throw new WireError("OUT_OF_RANGE", `${value} does not fit 64 bits`);
  }
  const u = BigInt.asUintN(64, value);
  writeIntFixed(buf, offset, Number(u & 0xffffffffn));
  writeIntFixed(buf, offset + 4, Number(u >> 32n));
  return offset + 8;
}

/** Reads a LongFixed as an unsigned 64-bit bigint (check bytes are unsigned). */
export function readULongFixed(buf: Uint8Array, offset: number): bigint {
  if (offset + 8 > buf.length) throw new WireError("TRUNCATED", "input ends inside a LongFixed", offset);
  const lo = readIntFixed(buf, offset) >>> 0;
  const hi = readIntFixed(buf, offset + 4) >>> 0;
  return (BigInt(hi) << 32n) | BigInt(lo);
}

/** Reads a LongFixed as a signed 64-bit bigint. */
export function readLongFixed(buf: Uint8Array, offset: number): bigint {
  return BigInt.asIntN(64, readULongFixed(buf, offset));
}

const TWO_32 = 0x100000000;

/**
 * Writes a signed LongFixed from a safe integer without touching BigInt (sequence IDs are written per record).
 */
export function writeLongFixedNumber(buf: Uint8Array, offset: number, value: number): number {
  if (!Number.isSafeInteger(value)) throw new WireError("OUT_OF_RANGE", `${value} is not a safe integer`);
  const lo = value >>> 0; // two's complement low word, also right for negatives
  const hi = Math.floor(value / TWO_32);
  writeIntFixed(buf, offset, lo);
  writeIntFixed(buf, offset + 4, hi >>> 0);
  return offset + 8;
}

/**
 * Reads a signed LongFixed as a number; throws `OUT_OF_RANGE` outside ±(2^53 − 1), so a value is never rounded.
 */
export function readLongFixedNumber(buf: Uint8Array, offset: number): number {
  if (offset + 8 > buf.length) throw new WireError("TRUNCATED", "input ends inside a LongFixed", offset);
  const lo = readIntFixed(buf, offset) >>> 0;
  const hi = readIntFixed(buf, offset + 4);
  const value = hi * TWO_32 + lo;
  if (!Number.isSafeInteger(value)) {
    throw new WireError("OUT_OF_RANGE", "LongFixed outside the safe-integer range", offset);
  }
  return value;
}
