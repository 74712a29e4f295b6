import { readIntFixed, readULongFixed } from "@immortal/wire";

/**
 * On disk a log is a sequence of commit units: a data record (sequence ≥ 0, exactly the bytes the binding
 * receives) immediately followed by a meta record with this sequence, the same committer ID and its own check
 * bytes. −1 and −2 are taken by AMBROSIA's control and checkpoint records, so the meta record uses −3 and
 * can never be mistaken for either.
 */
export const META_SEQUENCE = -3;

/** Largest record the scanner accepts unless told otherwise: the wire codec's frame limit (256 MiB). */
export const DEFAULT_MAX_LOG_RECORD_SIZE = 256 * 1024 * 1024;

/**
 * A record header read without validation. The scanner must classify damaged headers rather than throw on
 * them, so unlike the wire codec's `readRecordHeader` this never throws: a sequence outside the safe-integer
 * range comes back as NaN, which equals nothing.
 */
export interface RawRecordHeader {
  readonly committerId: number;
  readonly length: number;
  readonly checkBytes: bigint;
  readonly sequence: number;
}

const TWO_32 = 0x100000000;

export function readRawHeader(buf: Uint8Array, at: number): RawRecordHeader {
  const lo = readIntFixed(buf, at + 16) >>> 0;
  const hi = readIntFixed(buf, at + 20);
  const sequence = hi * TWO_32 + lo;
  return {
    committerId: readIntFixed(buf, at),
    length: readIntFixed(buf, at + 4),
    checkBytes: readULongFixed(buf, at + 8),
    sequence: Number.isSafeInteger(sequence) ? sequence : Number.NaN,
  };
}
