import { CheckpointFormatError } from "./errors.js";

/**
 * The client's checkpoint envelope: a 16-byte header in front of the app's state bytes.
 *
 * | bytes | field                                                               |
 * |-------|---------------------------------------------------------------------|
 * | 0–3   | magic `IMCK` (0x49 0x4D 0x43 0x4B)                                  |
 * | 4     | envelope version, 1                                                 |
 * | 5–7   | reserved, 0                                                         |
 * | 8–15  | next expected log sequence ID, int64 little-endian, ≥ 0             |
 * | 16–   | the app's state bytes, exactly `checkpoint length − 16` of them     |
 *
 * Why: log records are numbered for the whole life of an instance and a restored instance must know which
 * sequence ID the replay resumes at to detect a gap. The coordinator does not say, so the binding records it
 * itself, in the only thing that comes back with the log: its own checkpoint.
 */
export const ENVELOPE_HEADER_SIZE = 16;
export const ENVELOPE_VERSION = 1;
const MAGIC = [0x49, 0x4d, 0x43, 0x4b] as const;

export function encodeEnvelopeHeader(nextSequence: number): Uint8Array {
  if (!Number.isSafeInteger(nextSequence) || nextSequence < 0) {
    throw new RangeError(`next sequence ${nextSequence} is not a non-negative safe integer`);
  }
  const h = Buffer.alloc(ENVELOPE_HEADER_SIZE);
  h.set(MAGIC, 0);
  h[4] = ENVELOPE_VERSION;
  h.writeBigInt64LE(BigInt(nextSequence), 8);
  return h;
}

/** Parses a complete 16-byte header; throws `CheckpointFormatError` if it is not ours. */
export function decodeEnvelopeHeader(h: Uint8Array): { readonly nextSequence: number } {
  if (h.length < ENVELOPE_HEADER_SIZE) {
    throw new CheckpointFormatError(
      `checkpoint envelope needs ${ENVELOPE_HEADER_SIZE} bytes, got ${h.length}`,
    );
  }
  if (h[0] !== MAGIC[0] || h[1] !== MAGIC[1] || h[2] !== MAGIC[2] || h[3] !== MAGIC[3]) {
    const got = Buffer.from(h.subarray(0, 4)).toString("hex");
    throw new CheckpointFormatError(
      `checkpoint does not start with the client envelope magic 494d434b ("IMCK"), but ${got}: ` +
        "was it written by another binding?",
    );
  }
  if (h[4] !== ENVELOPE_VERSION) {
    throw new CheckpointFormatError(`checkpoint envelope version ${h[4]} is not supported (expected 1)`);
  }
  if (h[5] !== 0 || h[6] !== 0 || h[7] !== 0) {
    throw new CheckpointFormatError("checkpoint envelope reserved bytes 5–7 are not zero");
  }
  const next = Buffer.from(h.buffer, h.byteOffset, ENVELOPE_HEADER_SIZE).readBigInt64LE(8);
  if (next < 0n || next > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw new CheckpointFormatError(`checkpoint envelope holds an invalid next sequence ${next}`);
  }
  return { nextSequence: Number(next) };
}
