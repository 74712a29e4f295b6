import { open, readdir } from "node:fs/promises";
import path from "node:path";
import { digestFileName, parseStorageFileName } from "../storage/layout.js";
import type { DeterminismChecker, Divergence } from "./checker.js";

/**
 * Regenerated forks held until their digest is read are dropped (counted unchecked) beyond this many bytes:
 * a primary whose recording stopped (its disk is full, say) must not make its standby hold every output.
 */
const MAX_PENDING_BYTES = 64 * 1024 * 1024;

interface Pending {
  destination: string;
  fork: number;
  frame: Uint8Array;
  inputSequence: number;
}

/**
 * The determinism check of a replay that follows a growing log (an active/active standby): reads the digest
 * files the primary appends to, from the checkpoint's log on, as they grow and rotate, and checks each fork the
 * standby regenerates against them.
 *
 * The primary writes digests off its commit path, up to 100 ms after the outputs (and a crash may lose that
 * tail), so a standby often regenerates a fork before its digest is on disk. Such a fork is held, not counted:
 * it is checked when its digest arrives; it counts as unchecked once the digest can no longer come — a later
 * fork to the same destination was recorded (a recorder writes each destination's forks in order), or the
 * replay ended (`settle`). A fork is reported divergent only against a record of the same fork.
 */
export class DigestFollower {
  /** Digest file number → bytes already ingested. Files below `from` were finished and read. */
  private readonly offsets = new Map<number, number>();
  private from: number;
  private pending: Pending[] = [];
  private pendingBytes = 0;
  private reading: Promise<void> | undefined;
  private warned = false;

  constructor(
    private readonly dir: string,
    firstLog: number,
    readonly checker: DeterminismChecker,
    private readonly report: (d: Divergence) => void,
    private readonly warn: (msg: string, err: unknown) => void,
  ) {
    // An output can arrive while the checkpoint is taken, before the log number moves (as in `load`).
    this.from = Math.max(1, firstLog - 1);
  }

  get pendingOutputs(): number {
    return this.pending.length;
  }

  /** One regenerated fork: checked now if it can be, else held until its digest is read. */
  output(destination: string, fork: number, frame: Uint8Array, inputSequence: number): void {
    if (this.checker.decidable(destination, fork)) {
      this.check({ destination, fork, frame, inputSequence });
      return;
    }
    // The frame may be a view of a buffer the caller reuses.
    this.pending.push({ destination, fork, frame: Uint8Array.from(frame), inputSequence });
    this.pendingBytes += frame.length;
    while (this.pendingBytes > MAX_PENDING_BYTES && this.pending.length > 0) {
      const oldest = this.pending.shift()!;
      this.pendingBytes -= oldest.frame.length;
      this.check(oldest);
    }
  }

  /** Reads what the digest files gained since the last read (only one read at a time), then decides what it can. */
  poll(): Promise<void> {
    this.reading ??= this.read()
      .catch((err: unknown) => {
        // A diagnostic must never stop a standby: say so once, keep following.
        if (!this.warned) this.warn("determinism digests unreadable: some outputs stay unchecked", err);
        this.warned = true;
      })
      .finally(() => {
        this.reading = undefined;
        this.decide();
      });
    return this.reading;
  }

  /**
   * The replay is over: reads the digest files below `upTo` (those a new primary does not write) to their end
   * once more, then decides every held fork — checked if its digest is there, unchecked otherwise.
   */
  async settle(upTo = Number.POSITIVE_INFINITY): Promise<void> {
    await this.reading;
    this.upTo = upTo;
    await this.poll();
    const all = this.pending;
    this.pending = [];
    this.pendingBytes = 0;
    for (const p of all) this.check(p);
  }

  private upTo = Number.POSITIVE_INFINITY;

  private check(p: Pending): void {
    const d = this.checker.check(p.destination, p.fork, p.frame, p.inputSequence);
    if (d !== undefined) this.report(d);
  }

  private decide(): void {
    if (this.pending.length === 0) return;
    const keep: Pending[] = [];
    for (const p of this.pending) {
      if (this.checker.decidable(p.destination, p.fork)) {
        this.pendingBytes -= p.frame.length;
        this.check(p);
      } else keep.push(p);
    }
    this.pending = keep;
  }

  private async read(): Promise<void> {
    const files = (await readdir(this.dir))
      .map((name) => parseStorageFileName(name))
      .filter((f) => f?.kind === "digest" && f.n >= this.from && f.n < this.upTo)
      .map((f) => f!.n)
      .sort((a, b) => a - b);
    for (let i = 0; i < files.length; i++) {
      const n = files[i]!;
      // The recorder closes a digest file before it creates the next: with a newer one listed, this one is
      // complete, and the read below gets all of it.
      const finished = i < files.length - 1;
      await this.readFile(n);
      if (finished) {
        this.offsets.delete(n);
        this.from = n + 1;
      }
    }
  }

  private async readFile(n: number): Promise<void> {
    let fh: Awaited<ReturnType<typeof open>>;
    try {
      fh = await open(path.join(this.dir, digestFileName(n)), "r");
    } catch (err) {
      // Deleted by the primary's retention: its forks are older than any this standby still regenerates.
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return;
      throw err;
    }
    try {
      const offset = this.offsets.get(n) ?? 0;
      const size = (await fh.stat()).size;
      if (size <= offset) return;
      const buf = Buffer.allocUnsafe(size - offset);
      let got = 0;
      while (got < buf.length) {
        const { bytesRead } = await fh.read(buf, got, buf.length - got, offset + got);
        if (bytesRead === 0) break;
        got += bytesRead;
      }
      // A frame still being written ends the valid part: the next read takes it whole.
      this.offsets.set(n, offset + this.checker.ingest(buf.subarray(0, got)));
    } finally {
      await fh.close();
    }
  }
}
