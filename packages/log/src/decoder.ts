import {
  type Checkpoint,
  DEFAULT_MAX_FRAME_SIZE,
  decodeMessage,
  decodeMessages,
  frameEnd,
  type Message,
  MessageType,
  NEED_MORE,
  RECORD_HEADER_SIZE,
  type RecordHeader,
  type RpcLayout,
  readRecordHeader,
  tryReadZigZagInt,
  type VarintResult,
  verifyCheckBytes,
  WireError,
} from "@immortal/wire";
import { LogError } from "./errors.js";

/** A log record as decoded from an IC → binding stream or a log file. */
export interface LogRecord {
  readonly type: "record";
  readonly header: RecordHeader;
  /** The payload bytes after the header (a view, see "Ownership" in the README). */
  readonly payload: Uint8Array;
  /** The payload decoded with the `incoming` RPC layout. */
  readonly messages: readonly Message[];
}

/** A slice of the raw bytes that follow a Checkpoint message (a view into a pushed chunk, never a copy). */
export interface CheckpointChunk {
  readonly type: "checkpointChunk";
  readonly bytes: Uint8Array;
}

/** All `length` bytes of the current checkpoint have been delivered; normal decoding resumes. */
export interface CheckpointEnd {
  readonly type: "checkpointEnd";
}

/**
 * An RPCBatch frame passed on undecoded (only with `rawBatches`): its body is `[typeAt, end)` of `buf`. `buf` is
 * the pushed chunk, or for a frame that straddled chunks a buffer of the decoder's own that it never reuses, so a
 * consumer may keep views into it or rewrite the batch in place, provided the source does not reuse its chunks
 * (a `net.Socket` does not). The items are not checked: walk them with `forEachBatchItem` and `scanRpcFrame`
 * from `@immortal/wire`, which throw a `WireError` as decoding would.
 */
export interface RawBatch {
  readonly type: "rawBatch";
  readonly buf: Uint8Array;
  readonly typeAt: number;
  readonly end: number;
}

/**
 * Events of a `messages`-mode stream. Messages are events themselves (discriminated by their numeric
 * `type`), so decoding allocates nothing beyond the message object; the checkpoint events use string types.
 */
export type MessageStreamEvent = Message | CheckpointChunk | CheckpointEnd;
/** Events of a `messages`-mode stream read with `rawBatches: true`. */
export type ForwardingStreamEvent = MessageStreamEvent | RawBatch;
/** Events of a `records`-mode stream (discriminated by `type`). */
export type RecordStreamEvent = LogRecord | CheckpointChunk | CheckpointEnd;

export interface MessageDecoderOptions {
  /** RPC layout of the stream: `outgoing` (binding → IC, the default) or `incoming` (IC ↔ IC). */
  readonly layout?: RpcLayout;
  /** Refuse frames whose size prefix exceeds this (default 256 MiB), before buffering any of the body. */
  readonly maxFrameSize?: number;
  /**
   * Emit RPCBatch frames as {@link RawBatch} events instead of decoding their items into objects: for a consumer
   * that forwards the RPCs' bytes (the coordinator, which would otherwise decode each RPC only to encode it
   * again). Default false.
   */
  readonly rawBatches?: boolean;
}

export interface RecordDecoderOptions {
  /** Verify each record's xxHash64 check bytes (default true). */
  readonly verify?: boolean;
  /** Refuse records whose length field exceeds this (default 256 MiB), before buffering any of the body. */
  readonly maxRecordSize?: number;
}

const CHECKPOINT_END: CheckpointEnd = Object.freeze({ type: "checkpointEnd" });

/**
 * First allocation for a unit that straddles chunks, unless the unit is smaller. Growth is geometric and
 * capped at the unit's declared length, so a large unit is copied O(1) times per byte and a peer that
 * declares a large size and then stalls only costs what it actually sent (times two at most).
 */
const TAIL_INITIAL_CAPACITY = 64 * 1024;
/**
 * Units up to this size get a buffer of exactly their declared length at once: each byte is then copied once
 * (geometric growth from 64 KiB copies a 4 MiB binding batch twice over), and a stalled peer costs at most this.
 * It covers the binding's batches (4 MiB) and the coordinator's records (about 1 MiB).
 */
const TAIL_EXACT_CAPACITY = 8 * 1024 * 1024;

const slot: VarintResult = { value: 0, next: 0 };

/**
 * The chunk-boundary machinery shared by both modes: partial-unit buffering, checkpoint pass-through, the
 * failed/ended states and stream-position accounting. Subclasses only decode runs of whole units.
 */
abstract class StreamDecoder<U> {
  /** Holds a unit's prefix (size varint or record header) until its total length is known. */
  private readonly scratch = new Uint8Array(RECORD_HEADER_SIZE);
  /** The partial unit: `scratch` while its length is unknown, then a buffer of at most that length. */
  private tail: Uint8Array = this.scratch;
  private tailLen = 0;
  /** Total length of the partial unit, or −1 while its prefix is incomplete. */
  private unitLen = -1;
  /** Checkpoint bytes still to pass through. A bigint: lengths are int64 and may exceed 2^53. */
  private ckRemaining = 0n;
  private ckActive = false;
  private failure: unknown = undefined;
  private ended = false;
  /** Stream bytes fully turned into events. */
  private consumed = 0;
  /** Start of the current in-chunk run, or −1 outside one; with `cursor` it keeps `consumed` exact on errors. */
  private runBase = -1;
  /** Offset just after the last unit `decodeRun` completed. */
  protected cursor = 0;

  constructor(protected readonly emit: (event: U | CheckpointChunk | CheckpointEnd) => void) {}

  /**
   * Decodes as many whole units as `[p, end)` holds, emitting each; returns the offset after the last one.
   * Stops early right after a unit that starts a checkpoint (the bytes after it are raw checkpoint bytes).
   */
  protected abstract decodeRun(buf: Uint8Array, p: number, end: number): number;
  /** How many more prefix bytes to gather before `unitLength` can tell (records: the rest of the header). */
  protected abstract prefixStep(have: number): number;
  /** The unit's total length from its first `have` bytes, −1 if that needs more bytes; throws if invalid. */
  protected abstract unitLength(buf: Uint8Array, have: number): number;
  protected abstract readonly unitName: string;

  /**
   * Bytes of an incomplete frame or record held across chunk boundaries. Zero while checkpoint bytes pass
   * through, and never more than one unit (itself bounded by the size limit).
   */
  get bufferedBytes(): number {
    return this.tailLen;
  }

  /** Checkpoint bytes still expected (0n when not inside a checkpoint). */
  get checkpointRemaining(): bigint {
    return this.ckActive ? this.ckRemaining : 0n;
  }

  /**
   * Stream offset up to which input has been turned into events: after a failure, the start of the bad unit;
   * after a `TRUNCATED` end, where the torn tail begins (what a log reader truncates to).
   */
  get position(): number {
    return this.consumed;
  }

  /** The error that put the decoder in its failed state (usually a `WireError`), if any. */
  get error(): unknown {
    return this.failure;
  }

  /**
   * Decodes `chunk`, calling the handler synchronously for every event it completes. Views in the events
   * alias `chunk` (or a private buffer for units that straddled chunks), so do not overwrite a pushed chunk
   * while its events are in use. Throws the first `WireError`; afterwards every call rethrows it.
   */
  push(chunk: Uint8Array): void {
    if (this.failure !== undefined) throw this.failure;
    if (this.ended) throw new LogError("DECODER_ENDED", "push() after end()");
    const end = chunk.length;
    let p = 0;
    try {
      while (p < end) {
        if (this.ckActive) {
          p = this.passCheckpoint(chunk, p, end);
        } else if (this.tailLen > 0) {
          p = this.fillTail(chunk, p, end);
        } else {
          this.runBase = p;
          this.cursor = p;
          const q = this.decodeRun(chunk, p, end);
          this.runBase = -1;
          this.consumed += q - p;
          p = q;
          // Whatever follows is either checkpoint bytes or an incomplete unit, which starts the tail.
          if (p < end && !this.ckActive) p = this.fillTail(chunk, p, end);
        }
      }
    } catch (err) {
      if (this.runBase >= 0) this.consumed += this.cursor - this.runBase;
      this.runBase = -1;
      this.failure = err;
      throw err;
    }
  }

  /**
   * Declares the end of input. Throws `TRUNCATED` if it ended inside a unit or inside checkpoint bytes.
   * Calling it again is a no-op (or rethrows the failure).
   */
  end(): void {
    if (this.failure !== undefined) throw this.failure;
    if (this.ended) return;
    this.ended = true;
    if (this.ckActive) {
      this.failure = new WireError(
        "TRUNCATED",
        `input ended with ${this.ckRemaining} checkpoint bytes still to come`,
        this.consumed,
      );
    } else if (this.tailLen > 0) {
      const of = this.unitLen >= 0 ? ` of ${this.unitLen}` : "";
      this.failure = new WireError(
        "TRUNCATED",
        `input ended inside a ${this.unitName} (${this.tailLen}${of} bytes)`,
        this.consumed,
      );
    }
    if (this.failure !== undefined) throw this.failure;
  }

  /** Called by subclasses right after emitting the unit that carries a Checkpoint message. */
  protected startCheckpoint(length: bigint): void {
    if (length === 0n) {
      this.emit(CHECKPOINT_END);
    } else {
      this.ckRemaining = length;
      this.ckActive = true;
    }
  }

  private passCheckpoint(chunk: Uint8Array, p: number, end: number): number {
    const avail = end - p;
    const n = this.ckRemaining <= BigInt(avail) ? Number(this.ckRemaining) : avail;
    this.ckRemaining -= BigInt(n);
    this.consumed += n;
    const bytes = chunk.subarray(p, p + n);
    if (this.ckRemaining === 0n) this.ckActive = false;
    this.emit({ type: "checkpointChunk", bytes });
    if (!this.ckActive) this.emit(CHECKPOINT_END);
    return p + n;
  }

  /** Appends bytes of the unit that straddles chunks; decodes it once complete. */
  private fillTail(chunk: Uint8Array, p: number, end: number): number {
    while (this.unitLen < 0) {
      if (p >= end) return p;
      const n = Math.min(this.prefixStep(this.tailLen), end - p);
      for (let i = 0; i < n; i++) this.scratch[this.tailLen++] = chunk[p++]!;
      this.unitLen = this.unitLength(this.scratch, this.tailLen);
    }
    const unitLen = this.unitLen;
    const take = Math.min(unitLen - this.tailLen, end - p);
    if (this.tail === this.scratch || this.tailLen + take > this.tail.length) {
      const cap =
        unitLen <= TAIL_EXACT_CAPACITY
          ? unitLen
          : Math.min(unitLen, Math.max(TAIL_INITIAL_CAPACITY, this.tail.length * 2, this.tailLen + take));
      // A fresh buffer per unit (never reused): the decoded unit's views alias it and outlive this call.
      const grown = Buffer.allocUnsafe(cap);
      grown.set(this.tail.subarray(0, this.tailLen));
      this.tail = grown;
    }
    this.tail.set(chunk.subarray(p, p + take), this.tailLen);
    this.tailLen += take;
    p += take;
    if (this.tailLen === unitLen) {
      const unit = this.tail;
      this.tail = this.scratch;
      this.tailLen = 0;
      this.unitLen = -1;
      // `unit` holds exactly one whole unit, so this decodes it completely.
      this.decodeRun(unit, 0, unitLen);
      this.consumed += unitLen;
    }
    return p;
  }
}

/**
 * Incremental decoder for plain message streams (binding → IC, or IC ↔ IC with `layout: "incoming"`).
 * A Checkpoint message is emitted, then its raw bytes as `checkpointChunk` events, then `checkpointEnd`.
 */
export class MessageDecoder<E = MessageStreamEvent> extends StreamDecoder<Message | RawBatch> {
  private readonly layout: RpcLayout;
  private readonly maxFrameSize: number;
  private readonly rawBatches: boolean;
  protected readonly unitName = "message frame";

  /** `E` is `ForwardingStreamEvent` when `options.rawBatches` is true, `MessageStreamEvent` otherwise. */
  constructor(onEvent: (event: E) => void, options: MessageDecoderOptions = {}) {
    // Only RawBatch is outside MessageStreamEvent, and it is emitted only when `rawBatches` says E includes it.
    super(onEvent as (event: ForwardingStreamEvent) => void);
    this.layout = options.layout ?? "outgoing";
    this.maxFrameSize = options.maxFrameSize ?? DEFAULT_MAX_FRAME_SIZE;
    this.rawBatches = options.rawBatches ?? false;
  }

  protected decodeRun(buf: Uint8Array, p: number, end: number): number {
    const layout = this.layout;
    const max = this.maxFrameSize;
    while (p < end) {
      // frameEnd validates the size prefix first, so a huge or negative size fails before we buffer it.
      const e = frameEnd(buf, p, end, max);
      if (e === NEED_MORE) break;
      if (this.rawBatches) {
        tryReadZigZagInt(buf, p, e, slot);
        if (buf[slot.next] === MessageType.RPCBatch) {
          this.cursor = p = e;
          this.emit({ type: "rawBatch", buf, typeAt: slot.next, end: e });
          continue;
        }
      }
      const m = decodeMessage(buf, p, layout, e, max).message;
      this.cursor = p = e;
      this.emit(m);
      if (m.type === MessageType.Checkpoint) {
        this.startCheckpoint(m.length);
        if (this.checkpointRemaining > 0n) break;
      }
    }
    return p;
  }

  protected prefixStep(): number {
    // A varint's length shows only as its bytes arrive; this path runs at most 5 times per straddling frame.
    return 1;
  }

  protected unitLength(buf: Uint8Array, have: number): number {
    // frameEnd applies the size checks (negative, zero, over the limit); a lone prefix never completes a frame.
    frameEnd(buf, 0, have, this.maxFrameSize);
    if (tryReadZigZagInt(buf, 0, have, slot) === NEED_MORE) return -1;
    return slot.next + slot.value;
  }
}

/**
 * Incremental decoder for log records (IC → binding streams and log files). When a record carries a
 * Checkpoint message, the record is emitted, then the raw bytes that follow the record, then `checkpointEnd`.
 */
export class RecordDecoder extends StreamDecoder<LogRecord> {
  private readonly verify: boolean;
  private readonly maxRecordSize: number;
  protected readonly unitName = "record";

  constructor(onEvent: (event: RecordStreamEvent) => void, options: RecordDecoderOptions = {}) {
    super(onEvent);
    this.verify = options.verify !== false;
    this.maxRecordSize = options.maxRecordSize ?? DEFAULT_MAX_FRAME_SIZE;
  }

  protected decodeRun(buf: Uint8Array, p: number, end: number): number {
    const max = this.maxRecordSize;
    while (end - p >= RECORD_HEADER_SIZE) {
      // Validates the length field (negative, < 24, over the limit) before we wait for the body.
      const header = readRecordHeader(buf, p, max);
      const e = p + header.length;
      if (e > end) break;
      const payloadStart = p + RECORD_HEADER_SIZE;
      const payload = buf.subarray(payloadStart, e);
      if (this.verify) verifyCheckBytes(header, payload, p);
      const messages = decodeMessages(buf, "incoming", payloadStart, e, max);
      let checkpoint: Checkpoint | undefined;
      for (let i = 0; i < messages.length; i++) {
        const m = messages[i]!;
        if (m.type === MessageType.Checkpoint) {
          // The raw bytes follow the record, so two Checkpoints in one record cannot be told apart.
          if (checkpoint !== undefined) {
            throw new WireError("MALFORMED", "a record carries more than one Checkpoint message", p);
          }
          checkpoint = m;
        }
      }
      this.cursor = p = e;
      this.emit({ type: "record", header, payload, messages });
      if (checkpoint !== undefined) {
        this.startCheckpoint(checkpoint.length);
        if (this.checkpointRemaining > 0n) break;
      }
    }
    return p;
  }

  protected prefixStep(have: number): number {
    return RECORD_HEADER_SIZE - have;
  }

  protected unitLength(buf: Uint8Array, have: number): number {
    return have < RECORD_HEADER_SIZE ? -1 : readRecordHeader(buf, 0, this.maxRecordSize).length;
  }
}
