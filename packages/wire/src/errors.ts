/**
 * Every way a byte sequence can fail to be a valid AMBROSIA frame, record or value.
 * Decoders throw only `WireError`, so callers can tell "bad input" from a bug with one `instanceof`.
 */
export type WireErrorCode =
  /** A varint ran past its maximum length (5 bytes for ZigZagInt, 10 for ZigZagLong). */
  | "VARINT_TOO_LONG"
  /** A value does not fit its type (varint bits beyond 32/64, int64 outside the safe-integer range). */
  | "OUT_OF_RANGE"
  /** A size, length or count that must not be negative was negative. */
  | "NEGATIVE_LENGTH"
  /** A frame or record is larger than the configured limit. */
  | "FRAME_TOO_LARGE"
  /** The xxHash64 check bytes of a record do not match its payload. */
  | "BAD_CHECK_BYTES"
  /** The input ended inside a value, frame or record. */
  | "TRUNCATED"
  /** A message type byte outside 0–15, or a type not allowed where it appeared. */
  | "UNKNOWN_TYPE"
  /** A record length smaller than its header, or a record that does not fit its declared length. */
  | "BAD_RECORD_LENGTH"
  /** Well-framed bytes whose content is not a valid message (bad RPC type, batch count mismatch, trailing bytes, invalid UTF-8). */
  | "MALFORMED";

export class WireError extends Error {
  override readonly name = "WireError";
  constructor(
    readonly code: WireErrorCode,
    message: string,
    /** Byte offset in the input where the problem was found, when known. */
    readonly offset?: number,
  ) {
    super(`${code}: ${message}${offset === undefined ? "" : ` (at byte ${offset})`}`);
  }
}
