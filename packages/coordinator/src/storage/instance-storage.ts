import * as path from "node:path";
import { CheckpointReader, CheckpointWriter } from "./checkpoint.js";
import { errnoCode, StorageError, toStorageError } from "./errors.js";
import { type FsOps, nodeFsOps } from "./fs-ops.js";
import {
  checkpointFileName,
  instanceDirectory,
  logFileName,
  parseStorageFileName,
  type StorageFileKind,
  TEMP_SUFFIX,
} from "./layout.js";
import { LogScan, type ScanOptions, type ScanResult } from "./log-scan.js";
import { LogWriter, type LogWriterOptions } from "./log-writer.js";

/**
 * Durable storage of one instance version (`<logDir>/<instance>_<version>`): numbered logs and checkpoints.
 * Files today; a replicated store can implement the same interface later. Nothing here interprets payloads.
 */
export interface InstanceStorage {
  readonly dir: string;
  /** Numbers of the log files present, ascending ([] when the directory does not exist yet). */
  listLogs(): Promise<number[]>;
  /** Numbers of the published checkpoints, ascending (unpublished `.tmp` files are not listed). */
  listCheckpoints(): Promise<number[]>;
  logPath(n: number): string;
  checkpointPath(n: number): string;
  /** Opens `serverlog<n>` for appending commit units (creating the directory and file as needed). */
  openLogForAppend(n: number, options?: LogWriterOptions): Promise<LogWriter>;
  /** Scans a whole log into memory: simple, for logs that fit comfortably in memory. */
  scanLog(n: number, options: ScanOptions): Promise<ScanResult>;
  /** The same scan, streamed: iterate it for the units in bounded memory, then read `result`. */
  streamLog(n: number, options: ScanOptions): LogScan;
  createCheckpoint(n: number, options?: { overwrite?: boolean }): Promise<CheckpointWriter>;
  openCheckpoint(n: number): Promise<CheckpointReader>;
  /** Deletes logs, checkpoints and stale `.tmp` files numbered below `keepFrom`; returns the names removed. */
  deleteOlderThan(keepFrom: number): Promise<string[]>;
  /** Deletes `.tmp` checkpoints left by a crash (not those of writers open in this process). */
  cleanup(): Promise<string[]>;
}

export interface FileStorageOptions {
  /** File-system calls; tests substitute wrappers around Node's own to simulate a full disk. */
  readonly fsOps?: FsOps;
}

/**
 * `InstanceStorage` on a local (or mounted) file system. Constructing it touches nothing; the directory is
 * created on the first write (a new log or checkpoint), so a recovery that finds nothing creates nothing.
 */
export class FileInstanceStorage implements InstanceStorage {
  /** `.tmp` paths of checkpoint writers open in this process; `cleanup()` leaves them alone. */
  private readonly activeTmp = new Set<string>();
  private readonly ops: FsOps;
  private dirReady: Promise<void> | undefined;

  constructor(
    readonly dir: string,
    options: FileStorageOptions = {},
  ) {
    this.ops = options.fsOps ?? nodeFsOps;
  }

  /** The storage of `instance` version `version` under `logDir` (AMBROSIA's `<logDir>/<instance>_<version>`). */
  static forInstance(
    logDir: string,
    instance: string,
    version: number,
    options: FileStorageOptions = {},
  ): FileInstanceStorage {
    return new FileInstanceStorage(instanceDirectory(logDir, instance, version), options);
  }

  logPath(n: number): string {
    return path.join(this.dir, logFileName(n));
  }

  checkpointPath(n: number): string {
    return path.join(this.dir, checkpointFileName(n));
  }

  async listLogs(): Promise<number[]> {
    return this.list("log");
  }

  async listCheckpoints(): Promise<number[]> {
    return this.list("checkpoint");
  }

  async openLogForAppend(n: number, options?: LogWriterOptions): Promise<LogWriter> {
    await this.ensureDir();
    return LogWriter.open(this.ops, this.dir, n, options);
  }

  scanLog(n: number, options: ScanOptions): Promise<ScanResult> {
    return this.streamLog(n, options).collect();
  }

  streamLog(n: number, options: ScanOptions): LogScan {
    return new LogScan(this.logPath(n), this.ops, options);
  }

  async createCheckpoint(n: number, options: { overwrite?: boolean } = {}): Promise<CheckpointWriter> {
    const tmp = this.checkpointPath(n) + TEMP_SUFFIX;
    await this.ensureDir();
    this.activeTmp.add(tmp);
    try {
      return await CheckpointWriter.create(this.ops, this.dir, n, {
        ...options,
        onSettled: () => this.activeTmp.delete(tmp),
      });
    } catch (err) {
      this.activeTmp.delete(tmp);
      throw err;
    }
  }

  openCheckpoint(n: number): Promise<CheckpointReader> {
    return CheckpointReader.open(this.ops, this.dir, n);
  }

  async deleteOlderThan(keepFrom: number): Promise<string[]> {
    return this.remove(
      (kind, n, full) => n < keepFrom && !(kind === "checkpoint-tmp" && this.activeTmp.has(full)),
    );
  }

  async cleanup(): Promise<string[]> {
    return this.remove((kind, _n, full) => kind === "checkpoint-tmp" && !this.activeTmp.has(full));
  }

  private async list(kind: "log" | "checkpoint"): Promise<number[]> {
    const found: number[] = [];
    for (const name of await this.readdir()) {
      const parsed = parseStorageFileName(name);
      if (parsed?.kind === kind) found.push(parsed.n);
    }
    return found.sort((a, b) => a - b);
  }

  private async remove(
    select: (kind: StorageFileKind, n: number, full: string) => boolean,
  ): Promise<string[]> {
    const removed: string[] = [];
    for (const name of await this.readdir()) {
      const parsed = parseStorageFileName(name);
      const full = path.join(this.dir, name);
      if (parsed === undefined || !select(parsed.kind, parsed.n, full)) continue;
      try {
        await this.ops.unlink(full);
      } catch (err) {
        throw toStorageError(err, full, "delete");
      }
      removed.push(name);
    }
    if (removed.length > 0) {
      try {
        await this.ops.syncDir(this.dir);
      } catch (err) {
        throw toStorageError(err, this.dir, "sync directory");
      }
    }
    return removed.sort();
  }

  private async readdir(): Promise<string[]> {
    try {
      return await this.ops.readdir(this.dir);
    } catch (err) {
      // Nothing was ever written: an empty directory, as far as recovery is concerned.
      if (errnoCode(err) === "ENOENT") return [];
      throw toStorageError(err, this.dir, "list directory");
    }
  }

  private ensureDir(): Promise<void> {
    this.dirReady ??= (async () => {
      try {
        if (await this.ops.exists(this.dir)) return;
        await this.ops.mkdir(this.dir);
        // A new directory's entry lives in its parent; sync that, or the first log file (fdatasynced and
        // reported durable) could vanish with its directory in a crash.
        await this.ops.syncDir(path.dirname(this.dir));
      } catch (err) {
        this.dirReady = undefined;
        throw toStorageError(err, this.dir, "create instance directory");
      }
    })();
    return this.dirReady;
  }
}

/**
 * Recovery's choice of checkpoint: the newest published one whose content verifies. Damaged or unreadable
 * newer ones are skipped and reported (with their errors) so the coordinator can log them; returns
 * `undefined` if none is valid. The returned reader is open; the caller closes it.
 */
export async function openNewestValidCheckpoint(storage: InstanceStorage): Promise<{
  checkpoint: { n: number; reader: CheckpointReader } | undefined;
  skipped: { n: number; error: StorageError }[];
}> {
  const skipped: { n: number; error: StorageError }[] = [];
  const numbers = await storage.listCheckpoints();
  for (let i = numbers.length - 1; i >= 0; i--) {
    const n = numbers[i]!;
    let reader: CheckpointReader | undefined;
    try {
      reader = await storage.openCheckpoint(n);
      await reader.verify();
      return { checkpoint: { n, reader }, skipped };
    } catch (err) {
      await reader?.close();
      if (!(err instanceof StorageError)) throw err;
      skipped.push({ n, error: err });
    }
  }
  return { checkpoint: undefined, skipped };
}
