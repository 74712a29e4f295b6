import { checkBytes } from "@immortal/wire";
import { FormatError } from "../engine/bin.js";

/**
 * The digest file (`serverdigest<N>`, beside `serverlog<N>`): what the determinism checker recorded about the
 * outgoing forks a live binding produced while log N was current. A sequence of frames, each self-checking:
 *
 *   [u32 body length][u64 xxHash64 of the body][body]
 *   body  = [u32 group count] group…
 *   group = [str destination ("" = self)][f64 first fork number][f64 base input sequence][u32 count] entry…
 *   entry = [u32 input sequence − base][u64 xxHash64 of the RPC frame][u32 frame length][u8 n][n sample bytes]
 *
 * A group is a run of consecutive fork numbers to one destination, so the fork number is stored once per run.
 * The input sequence is the record the coordinator had most recently delivered to the binding when the fork
 * arrived. The sample is the frame's first bytes (incoming layout), kept so a divergence can show a diff.
 * A torn or damaged frame ends the file for readers: what follows it is never trusted.
 */
export const DIGEST_FRAME_HEADER = 12;

/** One run of consecutive forks to one destination, as the recorder accumulates it. */
export interface DigestGroup {
  readonly destination: string;
  readonly firstFork: number;
  readonly baseSequence: number;
  readonly sequences: number[];
  readonly hashes: bigint[];
  readonly lengths: number[];
  readonly samples: Uint8Array[];
}

/** One recorded fork, as the checker reads it back. */
export interface RecordedOutput {
  readonly inputSequence: number;
  readonly hash: bigint;
  readonly length: number;
  readonly sample: Uint8Array;
}

export function encodeDigestFrame(groups: readonly DigestGroup[]): Buffer {
  let size = DIGEST_FRAME_HEADER + 4;
  const names = groups.map((g) => Buffer.from(g.destination, "utf8"));
  for (let i = 0; i < groups.length; i++) {
    const g = groups[i]!;
    size += 4 + names[i]!.length + 8 + 8 + 4;
    for (const s of g.samples) size += 17 + s.length;
  }
  const buf = Buffer.allocUnsafe(size);
  let p = DIGEST_FRAME_HEADER;
  buf.writeUInt32LE(groups.length, p);
  p += 4;
  for (let i = 0; i < groups.length; i++) {
    const g = groups[i]!;
    const name = names[i]!;
    buf.writeUInt32LE(name.length, p);
    p += 4;
    name.copy(buf, p);
    p += name.length;
    buf.writeDoubleLE(g.firstFork, p);
    buf.writeDoubleLE(g.baseSequence, p + 8);
    buf.writeUInt32LE(g.hashes.length, p + 16);
    p += 20;
    for (let j = 0; j < g.hashes.length; j++) {
      const sample = g.samples[j]!;
      buf.writeUInt32LE(g.sequences[j]! - g.baseSequence, p);
      buf.writeBigUInt64LE(g.hashes[j]!, p + 4);
      buf.writeUInt32LE(g.lengths[j]!, p + 12);
      buf[p + 16] = sample.length;
      buf.set(sample, p + 17);
      p += 17 + sample.length;
    }
  }
  const body = buf.subarray(DIGEST_FRAME_HEADER);
  buf.writeUInt32LE(body.length, 0);
  buf.writeBigUInt64LE(checkBytes(body), 4);
  return buf;
}

/**
 * Reads every valid frame of a digest file's bytes, calling `onOutput` per recorded fork in file order.
 * Returns the number of bytes that were valid (a shorter value than `bytes.length` means a torn or damaged tail).
 */
export function decodeDigestFile(
  bytes: Uint8Array,
  onOutput: (destination: string, fork: number, out: RecordedOutput) => void,
): number {
  let at = 0;
  while (at + DIGEST_FRAME_HEADER <= bytes.length) {
    const view = Buffer.from(bytes.buffer, bytes.byteOffset + at, bytes.length - at);
    const len = view.readUInt32LE(0);
    if (at + DIGEST_FRAME_HEADER + len > bytes.length) break;
    const body = view.subarray(DIGEST_FRAME_HEADER, DIGEST_FRAME_HEADER + len);
    if (checkBytes(body) !== view.readBigUInt64LE(4)) break;
    try {
      decodeBody(body, onOutput);
    } catch (err) {
      if (err instanceof FormatError || err instanceof RangeError) break;
      throw err;
    }
    at += DIGEST_FRAME_HEADER + len;
  }
  return at;
}

function decodeBody(
  body: Buffer,
  onOutput: (destination: string, fork: number, out: RecordedOutput) => void,
): void {
  let p = 0;
  const need = (n: number) => {
    if (p + n > body.length) throw new FormatError(`digest frame truncated at byte ${p}`);
  };
  need(4);
  let groups = body.readUInt32LE(p);
  p += 4;
  for (; groups > 0; groups--) {
    need(4);
    const nameLength = body.readUInt32LE(p);
    p += 4;
    need(nameLength + 20);
    const destination = body.toString("utf8", p, p + nameLength);
    p += nameLength;
    const firstFork = body.readDoubleLE(p);
    const base = body.readDoubleLE(p + 8);
    const count = body.readUInt32LE(p + 16);
    p += 20;
    if (!Number.isSafeInteger(firstFork) || !Number.isSafeInteger(base))
      throw new FormatError("digest group header holds a non-integer");
    for (let j = 0; j < count; j++) {
      need(17);
      const inputSequence = base + body.readUInt32LE(p);
      const hash = body.readBigUInt64LE(p + 4);
      const length = body.readUInt32LE(p + 12);
      const n = body[p + 16]!;
      p += 17;
      need(n);
      // Copied: the file's buffer is dropped once loaded, the samples live until checked.
      const sample = Buffer.from(body.subarray(p, p + n));
      p += n;
      onOutput(destination, firstFork + j, { inputSequence, hash, length, sample });
    }
  }
}
