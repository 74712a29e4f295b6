import {
  cloneWatermark,
  encodeMeta,
  type InputWatermark,
  impulseAfter,
  KIND_FORK,
  type OutEntry,
  ZERO_WATERMARK,
} from "./state.js";

/** The storage operation a committer needs: one commit unit, durable (fdatasync) when the promise resolves. */
export interface CommitLog {
  append(unit: {
    committerId: number;
    sequence: number;
    payload: Uint8Array | Uint8Array[];
    meta: Uint8Array;
  }): Promise<{ readonly dataRecordPieces: readonly Uint8Array[] }>;
  readonly size: number;
}

export type OfferResult = "accepted" | "duplicate" | "gap";

/** Frames at least this large are written as their own piece (no copy); smaller ones are packed together. */
const LARGE_FRAME = 16 * 1024;
const SLAB_SIZE = 256 * 1024;
/**
 * While a commit is in flight, the pending batch is sealed once it holds this many bytes, and the next one
 * starts. Sealed batches are committed in order. Bounding a record keeps the pipeline moving: the binding gets
 * commit k's records and produces more work while commit k+1 is being written, instead of everything
 * travelling in one lockstep round (AMBROSIA bounds its commit buffers at 8 MiB for the same reason).
 */
export const DEFAULT_SEAL_BYTES = 1024 * 1024;

interface SealedBatch {
  openedAt: number;
  pieces: Uint8Array[];
  count: number;
  bytes: number;
  changed: Map<string, InputWatermark>;
}

/**
 * The pending record's payload. Small frames are copied into slabs so that one record is a few large pieces:
 * hashing and writev then cost per piece, not per message (a record of 8,192 64-byte RPCs is one slab, not
 * 8,192 pieces). Large frames are kept as they are, since copying them would cost more than a piece.
 */
class PayloadBuilder {
  pieces: Uint8Array[] = [];
  bytes = 0;
  count = 0;
  private slab: Buffer | undefined;
  private slabStart = 0;
  private slabPos = 0;

  add(frame: Uint8Array): void {
    this.count++;
    this.bytes += frame.length;
    if (frame.length >= LARGE_FRAME) {
      this.sealSlab();
      this.pieces.push(frame);
      return;
    }
    if (this.slab === undefined || this.slabPos + frame.length > this.slab.length) {
      this.sealSlab();
      // Slabs are never reused: the pieces handed to a commit are delivered to the binding afterwards.
      this.slab = Buffer.allocUnsafe(Math.max(SLAB_SIZE, frame.length));
      this.slabStart = 0;
      this.slabPos = 0;
    }
    this.slab.set(frame, this.slabPos);
    this.slabPos += frame.length;
  }

  private sealSlab(): void {
    if (this.slab !== undefined && this.slabPos > this.slabStart) {
      this.pieces.push(this.slab.subarray(this.slabStart, this.slabPos));
      this.slabStart = this.slabPos;
    }
  }

  /** The pieces so far; the builder starts a new payload (continuing in the same slab). */
  take(): Uint8Array[] {
    this.sealSlab();
    const out = this.pieces;
    this.pieces = [];
    this.bytes = 0;
    this.count = 0;
    return out;
  }
}

export interface CommitStats {
  records: number;
  messages: number;
  bytes: number;
  lastCommitMs: number;
  totalCommitMs: number;
  /** From the first input of a record arriving to the record being durable (queueing + write + fdatasync). */
  totalLatencyMs: number;
  maxBatch: number;
}

export interface CommitterHooks {
  /** The record is durable: deliver it to the binding and acknowledge the sources whose watermarks moved. */
  onCommitted(
    dataRecordPieces: readonly Uint8Array[],
    sequence: number,
    changed: ReadonlyMap<string, InputWatermark>,
  ): void;
  onError(err: unknown): void;
}

/**
 * Group commit. Inputs from every source (self-calls, impulses, remote ICs) are offered here, deduplicated
 * against per-source watermarks, and accumulated. At most one write + fdatasync is in flight; whatever
 * arrives meanwhile becomes the next record. A lone input starts a commit at the end of the current tick —
 * there is no timer, so an idle system commits a single message with one fdatasync of latency.
 */
export class Committer {
  /** Durably logged, per source. */
  readonly committed: Map<string, InputWatermark>;
  /** Logged or accepted into the pending batch, per source (what dedupe compares against). */
  private readonly accepted = new Map<string, InputWatermark>();
  private readonly payload = new PayloadBuilder();
  private changed = new Set<string>();
  private readonly sealed: SealedBatch[] = [];
  private inFlight: Promise<void> | undefined;
  private scheduled = false;
  private pausedFlag = false;
  /** Held while the binding is not reading: nothing new is committed (and so delivered) until it drains. */
  private held = false;
  private failed = false;
  readonly stats: CommitStats = {
    records: 0,
    messages: 0,
    bytes: 0,
    lastCommitMs: 0,
    totalCommitMs: 0,
    totalLatencyMs: 0,
    maxBatch: 0,
  };
  /** When the first input of the open (not yet sealed) batch arrived. */
  private openedAt = 0;

  constructor(
    private log: CommitLog,
    readonly committerId: number,
    public nextSequence: number,
    committed: Map<string, InputWatermark>,
    private readonly hooks: CommitterHooks,
    private readonly sealBytes = DEFAULT_SEAL_BYTES,
  ) {
    this.committed = committed;
  }

  /** The watermark offers are compared with (durable plus pending). */
  watermark(source: string): InputWatermark {
    return this.accepted.get(source) ?? this.committed.get(source) ?? ZERO_WATERMARK;
  }

  /** Offers one input. Duplicates (already logged or pending) are dropped; a fork gap is refused. */
  offer(source: string, e: OutEntry): OfferResult {
    let wm = this.accepted.get(source);
    if (wm === undefined) {
      wm = cloneWatermark(this.committed.get(source) ?? ZERO_WATERMARK);
      this.accepted.set(source, wm);
    }
    if (e.kind === KIND_FORK) {
      if (e.seq <= wm.fork) return "duplicate";
      if (e.seq !== wm.fork + 1) return "gap";
      wm.fork = e.seq;
    } else {
      const id = { epoch: e.epoch, n: e.seq };
      if (!impulseAfter(id, wm.impulse)) return "duplicate";
      wm.impulse = id;
    }
    if (this.payload.count === 0) this.openedAt = performance.now();
    this.payload.add(e.frame);
    this.changed.add(source);
    if (this.payload.bytes >= this.sealBytes && this.inFlight !== undefined) this.sealed.push(this.seal());
    this.schedule();
    return "accepted";
  }

  /** Logs a frame that belongs to no stream (the InitialMessage at first start). */
  offerUnsequenced(frame: Uint8Array): void {
    if (this.payload.count === 0) this.openedAt = performance.now();
    this.payload.add(frame);
    this.schedule();
  }

  /** Closes the pending batch with the watermarks its frames reach. */
  private seal(): SealedBatch {
    const count = this.payload.count;
    const bytes = this.payload.bytes;
    const pieces = this.payload.take();
    const changed = new Map<string, InputWatermark>();
    for (const name of this.changed) changed.set(name, cloneWatermark(this.accepted.get(name)!));
    this.changed = new Set();
    return { openedAt: this.openedAt, pieces, count, bytes, changed };
  }

  get logSize(): number {
    return this.log.size;
  }

  private schedule(): void {
    if (this.scheduled || this.inFlight !== undefined || this.pausedFlag || this.held || this.failed) return;
    if (this.payload.count === 0 && this.sealed.length === 0) return;
    this.scheduled = true;
    queueMicrotask(() => {
      this.scheduled = false;
      this.flush();
    });
  }

  private flush(): void {
    if (this.inFlight !== undefined || this.pausedFlag || this.held || this.failed) return;
    const batch = this.sealed.shift() ?? (this.payload.count > 0 ? this.seal() : undefined);
    if (batch === undefined) return;
    const { pieces: frames, count, bytes, changed, openedAt } = batch;
    const sequence = this.nextSequence++;
    const started = performance.now();
    this.inFlight = this.log
      .append({ committerId: this.committerId, sequence, payload: frames, meta: encodeMeta(changed) })
      .then(
        ({ dataRecordPieces }) => {
          const ms = performance.now() - started;
          const s = this.stats;
          s.records++;
          s.messages += count;
          s.bytes += bytes;
          s.lastCommitMs = ms;
          s.totalCommitMs += ms;
          s.totalLatencyMs += performance.now() - openedAt;
          if (count > s.maxBatch) s.maxBatch = count;
          for (const [name, wm] of changed) this.committed.set(name, wm);
          this.inFlight = undefined;
          this.hooks.onCommitted(dataRecordPieces, sequence, changed);
          this.schedule();
        },
        (err: unknown) => {
          // A failed append (disk full, I/O error) must stop everything: nothing after it may be delivered.
          this.failed = true;
          this.inFlight = undefined;
          this.hooks.onError(err);
        },
      );
  }

  /** Stops starting new commits and waits for the one in flight (checkpoint and log rotation need a quiet log). */
  async pause(): Promise<void> {
    this.pausedFlag = true;
    while (this.inFlight !== undefined) await this.inFlight;
  }

  /** Continues (optionally in a new log file) and commits whatever accumulated meanwhile. */
  resume(log?: CommitLog): void {
    if (log !== undefined) this.log = log;
    this.pausedFlag = false;
    this.schedule();
  }

  /** Holds or releases commits (independently of pause/resume, which checkpoints use). */
  hold(held: boolean): void {
    this.held = held;
    if (!held) this.schedule();
  }

  /** Resolves when nothing is pending or in flight (used by orderly shutdown and tests). */
  async drain(): Promise<void> {
    while (
      this.inFlight !== undefined ||
      ((this.payload.count > 0 || this.sealed.length > 0) && !this.pausedFlag && !this.failed)
    ) {
      if (this.inFlight !== undefined) await this.inFlight;
      else await new Promise<void>((r) => setImmediate(r));
    }
  }
}
