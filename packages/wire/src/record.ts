import { WireError } from "./errors.js";
import {
  readIntFixed,
  readLongFixedNumber,
  readULongFixed,
  writeIntFixed,
  writeLongFixed,
  writeLongFixedNumber,
} from "./fixed.js";
import { checkBytes } from "./hash.js";
import {
  DEFAULT_MAX_FRAME_SIZE,
  decodeMessages,
  type Message,
  messageSize,
  type RpcLayout,
  writeMessage,
} from "./messages.js";

/**
 * Log records: everything an IC sends its binding, and (in our IC) every record on disk.
 * `[IntFixed committerId][IntFixed length incl. header][LongFixed checkBytes][LongFixed sequence][messages…]`
 */
export const RECORD_HEADER_SIZE = 24;
/** Sequence ID of control records (TakeCheckpoint and friends): outside the log order. */
export const CONTROL_SEQUENCE = -1;
/** Sequence ID of the record carrying the recovery Checkpoint message (AMBROSIA writes check bytes 0 there). */
export const CHECKPOINT_SEQUENCE = -2;
/** The largest record the 32-bit length field can describe. */
export const MAX_RECORD_LENGTH = 0x7fffffff;

export interface RecordHeader {
  /** The sending IC's committer ID, constant for the life of an instance. */
  readonly committerId: number;
  /** Total record length in bytes, header included. */
  readonly length: number;
  /** xxHash64 (seed 0) of the payload, unsigned. */
  readonly checkBytes: bigint;
  /** Consecutive from 0 for logged records; negative for records outside the log. */
  readonly sequence: number;
}

export function writeRecordHeader(buf: Uint8Array, offset: number, h: RecordHeader): number {
  if (h.length < RECORD_HEADER_SIZE || h.length > MAX_RECORD_LENGTH) {
    throw new WireError("BAD_RECORD_LENGTH", `record length ${h.length}`);
  }
  writeIntFixed(buf, offset, h.committerId);
  writeIntFixed(buf, offset + 4, h.length);
  writeLongFixed(buf, offset + 8, h.checkBytes);
  writeLongFixedNumber(buf, offset + 16, h.sequence);
  return offset + RECORD_HEADER_SIZE;
}

/**
 * Reads a header at `offset`, validating its length field (≥ 24 and ≤ `maxRecordSize`) so that a reader can
 * refuse a bogus length before it tries to buffer that many bytes.
 */
export function readRecordHeader(
  buf: Uint8Array,
  offset: number,
  maxRecordSize: number = DEFAULT_MAX_FRAME_SIZE,
): RecordHeader {
  if (offset + RECORD_HEADER_SIZE > buf.length) {
    throw new WireError("TRUNCATED", "input ends inside a record header", offset);
  }
  const length = readIntFixed(buf, offset + 4);
  if (length < 0) throw new WireError("NEGATIVE_LENGTH", `record length ${length}`, offset + 4);
  if (length < RECORD_HEADER_SIZE) {
    throw new WireError(
      "BAD_RECORD_LENGTH",
      `record length ${length} is shorter than its header`,
      offset + 4,
    );
  }
  if (length > maxRecordSize) {
    throw new WireError(
      "FRAME_TOO_LARGE",
      `record of ${length} bytes exceeds the limit of ${maxRecordSize}`,
      offset,
    );
  }
  return {
    committerId: readIntFixed(buf, offset),
    length,
    checkBytes: readULongFixed(buf, offset + 8),
    sequence: readLongFixedNumber(buf, offset + 16),
  };
}

/**
 * Whether a record's check bytes must be verified. AMBROSIA's IC writes 0 on the recovery-checkpoint record
 * (sequence −2), so that one combination is accepted unverified; every other record is checked.
 */
export function hasCheckBytes(h: RecordHeader): boolean {
  return !(h.sequence === CHECKPOINT_SEQUENCE && h.checkBytes === 0n);
}

/** Throws `BAD_CHECK_BYTES` unless `payload` hashes to the header's check bytes. */
export function verifyCheckBytes(h: RecordHeader, payload: Uint8Array, offset?: number): void {
  if (!hasCheckBytes(h)) return;
  const actual = checkBytes(payload);
  if (actual !== h.checkBytes) {
    throw new WireError(
      "BAD_CHECK_BYTES",
      `record ${h.sequence}: check bytes ${h.checkBytes.toString(16)} but payload hashes to ${actual.toString(16)}`,
      offset,
    );
  }
}

export interface RecordSpec {
  readonly committerId: number;
  readonly sequence: number;
  /** Either the messages to pack, or an already-encoded payload. */
  readonly messages?: readonly Message[];
  readonly payload?: Uint8Array;
}

/**
 * Encodes a whole record: header with freshly computed check bytes, then the payload.
 * The recovery-checkpoint record (sequence −2) gets check bytes 0, exactly as AMBROSIA's IC sends it.
 */
export function encodeRecord(spec: RecordSpec): Uint8Array {
  let payloadLength: number;
  if (spec.payload !== undefined) {
    payloadLength = spec.payload.length;
  } else {
    payloadLength = 0;
    for (const m of spec.messages ?? []) payloadLength += messageSize(m);
  }
  const out = Buffer.allocUnsafe(RECORD_HEADER_SIZE + payloadLength);
  if (spec.payload !== undefined) {
    out.set(spec.payload, RECORD_HEADER_SIZE);
  } else {
    let p = RECORD_HEADER_SIZE;
    for (const m of spec.messages ?? []) p = writeMessage(out, p, m);
  }
  const payload = out.subarray(RECORD_HEADER_SIZE);
  writeRecordHeader(out, 0, {
    committerId: spec.committerId,
    length: out.length,
    checkBytes: spec.sequence === CHECKPOINT_SEQUENCE ? 0n : checkBytes(payload),
    sequence: spec.sequence,
  });
  return out;
}

export interface RecordDecodeOptions {
  /** Verify check bytes (default true). */
  readonly verify?: boolean;
  /** Refuse records longer than this (default 256 MiB). */
  readonly maxRecordSize?: number;
  /** RPC layout of the messages inside (default `incoming`: records flow IC → binding). */
  readonly layout?: RpcLayout;
}

export interface DecodedRecord {
  readonly header: RecordHeader;
  /** The payload bytes (a view into the input). */
  readonly payload: Uint8Array;
  readonly messages: Message[];
  /** Offset just after the record. */
  readonly next: number;
}

/** Decodes one whole record at `offset`; throws `TRUNCATED` if the input holds less than its length. */
export function decodeRecord(buf: Uint8Array, offset = 0, options: RecordDecodeOptions = {}): DecodedRecord {
  const max = options.maxRecordSize ?? DEFAULT_MAX_FRAME_SIZE;
  const header = readRecordHeader(buf, offset, max);
  const end = offset + header.length;
  if (end > buf.length)
    throw new WireError("TRUNCATED", `record of ${header.length} bytes is cut short`, offset);
  const payload = buf.subarray(offset + RECORD_HEADER_SIZE, end);
  if (options.verify !== false) verifyCheckBytes(header, payload, offset);
  const messages = decodeMessages(buf, options.layout ?? "incoming", offset + RECORD_HEADER_SIZE, end, max);
  return { header, payload, messages, next: end };
}
