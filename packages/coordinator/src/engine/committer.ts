import { encodeMeta } from "./state.js";
import {
  type InputWatermark,
  KIND_FORK,
  type OutEntry,
  ZERO_WATERMARK,
  cloneWatermark,
  impulseAfter,
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

export interface CommitStats {
  records: number;
  messages: number;
  bytes: number;
  lastCommitMs: number;
  totalCommitMs: number;
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
  private frames: Uint8Array[] = [];
  private frameBytes = 0;
  private changed = new Set<string>();
  private inFlight: Promise<void> | undefined;
  private scheduled = false;
  private pausedFlag = false;
  private failed = false;
  readonly stats: CommitStats = { records: 0, messages: 0, bytes: 0, lastCommitMs: 0, totalCommitMs: 0, maxBatch: 0 };

  constructor(
    private log: CommitLog,
    readonly committerId: number,
    public nextSequence: number,
    committed: Map<string, InputWatermark>,
    private readonly hooks: CommitterHooks,
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
    this.frames.push(e.frame);
    this.frameBytes += e.frame.length;
    this.changed.add(source);
    this.schedule();
    return "accepted";
  }

  /** Logs a frame that belongs to no stream (the InitialMessage at first start). */
  offerUnsequenced(frame: Uint8Array): void {
    this.frames.push(frame);
    this.frameBytes += frame.length;
    this.schedule();
  }

  get pendingBytes(): number {
    return this.frameBytes;
  }

  get logSize(): number {
    return this.log.size;
  }

  private schedule(): void {
    if (this.scheduled || this.inFlight !== undefined || this.pausedFlag || this.failed) return;
    this.scheduled = true;
    queueMicrotask(() => {
      this.scheduled = false;
      this.flush();
    });
  }

  private flush(): void {
    if (this.inFlight !== undefined || this.pausedFlag || this.failed || this.frames.length === 0) return;
    const frames = this.frames;
    const count = frames.length;
    const bytes = this.frameBytes;
    const changed = new Map<string, InputWatermark>();
    for (const name of this.changed) changed.set(name, cloneWatermark(this.accepted.get(name)!));
    this.frames = [];
    this.frameBytes = 0;
    this.changed = new Set();
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

  get paused(): boolean {
    return this.pausedFlag;
  }

  /** Resolves when nothing is pending or in flight (used by orderly shutdown and tests). */
  async drain(): Promise<void> {
    while (this.inFlight !== undefined || (this.frames.length > 0 && !this.pausedFlag && !this.failed)) {
      if (this.inFlight !== undefined) await this.inFlight;
      else await new Promise<void>((r) => setImmediate(r));
    }
  }
}
