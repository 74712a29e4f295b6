import type { FileHandle } from "node:fs/promises";
import path from "node:path";
import { checkBytes } from "@immortal/wire";
import type { Logger } from "pino";
import { type FsOps, nodeFsOps } from "../storage/fs-ops.js";
import { digestFileName } from "../storage/layout.js";
import { DigestFrameBuilder } from "./format.js";

/**
 * How many leading bytes of each outgoing fork are kept for the diff of a divergence. A frame no longer than
 * this is kept whole and not hashed: its bytes say more than a hash and cost less to get.
 */
export const DEFAULT_SAMPLE_BYTES = 96;
/**
 * Digests are written when this much has accumulated, or after `FLUSH_INTERVAL_MS`: few writes (a write per
 * commit would share the disk's journal with every log fdatasync), and a bounded amount lost in a crash.
 */
const FLUSH_BYTES = 1024 * 1024;
const FLUSH_INTERVAL_MS = 100;
/** The digest file is fdatasynced at most this often (and on rotation and close). */
const SYNC_INTERVAL_MS = 1000;

interface DigestFile {
  n: number;
  handle: FileHandle;
  dirty: boolean;
  size: number;
}

export interface RecorderStats {
  recordedOutputs: number;
  digestBytes: number;
}

/**
 * Records, for every fork a live binding sends, its xxHash64, its length, its first bytes and the input record
 * being handled, in the digest file of the current log. Off the commit path on purpose: hashing and a copy of
 * the sample are the only per-message work; entries are built in place and written in large pieces (1 MiB or
 * every 100 ms), and fdatasynced every second, so a commit never waits for them. A write lost in a crash only leaves those outputs unchecked — the checker
 * compares only what it finds recorded, so a lost record can never produce a false report.
 */
export class DigestRecorder {
  private readonly builder: DigestFrameBuilder;
  private readonly sampleBytes: number;
  private pendingLog = 0;
  private flushTimer: NodeJS.Timeout | undefined;
  private chain: Promise<void> = Promise.resolve();
  private file: DigestFile | undefined;
  private syncTimer: NodeJS.Timeout | undefined;
  private failed = false;
  private closed = false;
  private closing: Promise<void> | undefined;
  readonly stats: RecorderStats = { recordedOutputs: 0, digestBytes: 0 };

  /**
   * `ops`: the file-system calls every write, fdatasync and file creation goes through. An active/active
   * primary passes its lease-fenced ones (replication/fencing.ts), so a deposed primary writes no digest.
   */
  constructor(
    private readonly dir: string,
    private readonly logger: Logger,
    sampleBytes: number = DEFAULT_SAMPLE_BYTES,
    private readonly ops: FsOps = nodeFsOps,
  ) {
    this.sampleBytes = Math.min(255, Math.max(0, sampleBytes));
    this.builder = new DigestFrameBuilder(this.sampleBytes);
  }

  /** One outgoing fork (`frame` in the incoming layout), produced while `logNumber` was the current log. */
  record(
    destination: string,
    fork: number,
    frame: Uint8Array,
    inputSequence: number,
    logNumber: number,
  ): void {
    if (this.failed || this.closed) return;
    if (logNumber !== this.pendingLog) {
      // Each log's digests go to their own file: flush what belongs to the previous one first.
      this.flush();
      this.pendingLog = logNumber;
    }
    const whole = frame.length <= this.sampleBytes;
    this.builder.add(destination, fork, frame, whole ? 0n : checkBytes(frame), inputSequence);
    this.stats.recordedOutputs++;
    if (this.builder.bytes >= FLUSH_BYTES) this.flush();
    else if (this.flushTimer === undefined) {
      this.flushTimer = setTimeout(() => this.flush(), FLUSH_INTERVAL_MS);
      this.flushTimer.unref();
    }
  }

  private flush(): void {
    if (this.flushTimer !== undefined) clearTimeout(this.flushTimer);
    this.flushTimer = undefined;
    if (this.builder.empty || this.failed) return;
    const bytes = this.builder.take();
    const n = this.pendingLog;
    this.enqueue(async () => {
      const f = await this.fileFor(n);
      for (let at = 0; at < bytes.length; ) {
        const wrote = await this.ops.write(f.handle, bytes, at, bytes.length - at, f.size);
        at += wrote;
        f.size += wrote;
      }
      f.dirty = true;
      this.stats.digestBytes += bytes.length;
    });
    if (this.syncTimer === undefined) {
      this.syncTimer = setTimeout(() => {
        this.syncTimer = undefined;
        this.enqueue(() => this.sync());
      }, SYNC_INTERVAL_MS);
      this.syncTimer.unref();
    }
  }

  private enqueue(op: () => Promise<void>): void {
    this.chain = this.chain.then(op).catch((err: unknown) => {
      if (this.failed) return;
      this.failed = true;
      // Diagnostics must never take the coordinator down: stop recording, say so once.
      this.logger.warn(
        { err: String(err), dir: this.dir },
        "determinism digests cannot be written; recording stopped",
      );
    });
  }

  private async fileFor(n: number): Promise<DigestFile> {
    if (this.file?.n === n) return this.file;
    await this.closeFile();
    const handle = await this.ops.open(path.join(this.dir, digestFileName(n)), "a", 0o644);
    // Appended (O_APPEND): positional writes land at the end anyway; the size keeps short writes exact.
    this.file = { n, handle, dirty: false, size: await this.ops.size(handle) };
    return this.file;
  }

  private async sync(): Promise<void> {
    if (this.file?.dirty) {
      this.file.dirty = false;
      await this.ops.datasync(this.file.handle);
    }
  }

  private async closeFile(): Promise<void> {
    const f = this.file;
    if (f === undefined) return;
    this.file = undefined;
    try {
      if (f.dirty) await this.ops.datasync(f.handle);
    } finally {
      await this.ops.close(f.handle);
    }
  }

  /** Writes and syncs everything recorded so far, then closes the file (every caller waits for the same). */
  close(): Promise<void> {
    this.closing ??= (async () => {
      this.flush();
      this.closed = true;
      if (this.syncTimer !== undefined) clearTimeout(this.syncTimer);
      this.enqueue(() => this.closeFile());
      await this.chain;
    })();
    return this.closing;
  }
}
