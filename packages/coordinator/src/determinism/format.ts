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
 *   (a frame of at most n bytes is kept whole; its hash field is then 0 and unused)
 *
 * A group is a run of consecutive fork numbers to one destination, so the fork number is stored once per run.
 * The input sequence is the record the coordinator had most recently delivered to the binding when the fork
 * arrived. The sample is the frame's first bytes (incoming layout), kept so a divergence can show a diff.
 * A torn or damaged frame ends the file for readers: what follows it is never trusted.
 */
export const DIGEST_FRAME_HEADER = 12;

/** One recorded fork, as the checker reads it back. */
export interface RecordedOutput {
  readonly inputSequence: number;
  readonly hash: bigint;
  readonly length: number;
  readonly sample: Uint8Array;
}

const INITIAL_FRAME_BYTES = 64 * 1024;
const HASH = new BigUint64Array(1);
const HASH_BYTES = new Uint8Array(HASH.buffer);
/** The scratch array is in the platform's byte order; the file's is little-endian. */
const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
const copy = Buffer.prototype.copy as (
  this: Uint8Array,
  target: Uint8Array,
  targetStart: number,
  sourceStart: number,
  sourceEnd: number,
) => number;

/**
 * Builds one digest frame in place, entry by entry: the live path's cost per fork is a hash, a few fixed-size
 * writes and a copy of the sample, with no per-entry objects.
 */
export class DigestFrameBuilder {
  private buf = Buffer.allocUnsafe(INITIAL_FRAME_BYTES);
  private pos = DIGEST_FRAME_HEADER + 4;
  private groups = 0;
  private destination: string | undefined;
  private nextFork = 0;
  private baseSequence = 0;
  /** Where the open group's entry count is. */
  private countAt = 0;
  private count = 0;

  constructor(private readonly sampleBytes: number) {}

  get empty(): boolean {
    return this.groups === 0;
  }

  /** Bytes of the frame so far. */
  get bytes(): number {
    return this.pos;
  }

  private room(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    const next = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.pos + n));
    this.buf.copy(next, 0, 0, this.pos);
    this.buf = next;
  }

  add(destination: string, fork: number, frame: Uint8Array, hash: bigint, inputSequence: number): void {
    if (destination !== this.destination || fork !== this.nextFork || inputSequence < this.baseSequence) {
      this.closeGroup();
      const nameLength = Buffer.byteLength(destination, "utf8");
      this.room(4 + nameLength + 20);
      const b = this.buf;
      b.writeUInt32LE(nameLength, this.pos);
      b.write(destination, this.pos + 4, "utf8");
      this.pos += 4 + nameLength;
      b.writeDoubleLE(fork, this.pos);
      b.writeDoubleLE(inputSequence, this.pos + 8);
      this.countAt = this.pos + 16;
      this.pos += 20;
      this.destination = destination;
      this.baseSequence = inputSequence;
      this.groups++;
    }
    this.nextFork = fork + 1;
    this.count++;
    const n = Math.min(frame.length, this.sampleBytes);
    this.room(17 + n);
    const b = this.buf;
    const p = this.pos;
    b.writeUInt32LE(inputSequence - this.baseSequence, p);
    // Through a scratch 64-bit array: cheaper than writeBigUInt64LE's shifts, and no allocation.
    if (LITTLE_ENDIAN) {
      HASH[0] = hash;
      b.set(HASH_BYTES, p + 4);
    } else b.writeBigUInt64LE(hash, p + 4);
    b.writeUInt32LE(frame.length, p + 12);
    b[p + 16] = n;
    // Buffer#copy takes a range without allocating a view (subarray would, per fork).
    copy.call(frame, b, p + 17, 0, n);
    this.pos = p + 17 + n;
  }

  private closeGroup(): void {
    if (this.destination === undefined) return;
    this.buf.writeUInt32LE(this.count, this.countAt);
    this.destination = undefined;
    this.count = 0;
  }

  /** The finished frame (header with length and check bytes); the builder starts over. */
  take(): Buffer {
    this.closeGroup();
    const out = this.buf.subarray(0, this.pos);
    out.writeUInt32LE(this.groups, DIGEST_FRAME_HEADER);
    const body = out.subarray(DIGEST_FRAME_HEADER);
    out.writeUInt32LE(body.length, 0);
    out.writeBigUInt64LE(checkBytes(body), 4);
    // The frame is handed to an asynchronous write: never reuse its buffer.
    this.buf = Buffer.allocUnsafe(Math.max(INITIAL_FRAME_BYTES, Math.min(this.buf.length, 4 * 1024 * 1024)));
    this.pos = DIGEST_FRAME_HEADER + 4;
    this.groups = 0;
    return out;
  }
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
