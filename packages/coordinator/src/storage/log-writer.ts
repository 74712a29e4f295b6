import { constants } from "node:fs";
import type { FileHandle } from "node:fs/promises";
import * as path from "node:path";
import { checkBytes, createCheckBytesHasher, RECORD_HEADER_SIZE, writeRecordHeader } from "@immortal/wire";
import { ConcurrentAppendError, StorageError, toStorageError } from "./errors.js";
import type { FsOps } from "./fs-ops.js";
import { logFileName } from "./layout.js";
import { DEFAULT_MAX_LOG_RECORD_SIZE, META_SEQUENCE } from "./log-format.js";

export interface LogWriterOptions {
  /**
   * What to do when the log file already has content: `fail` (default) refuses, `truncate` empties it,
   * `append` continues after the existing bytes — only after a repairing scan has confirmed they end with a
   * complete unit.
   */
  readonly existing?: "fail" | "truncate" | "append";
  /**
   * If set, every append must carry exactly this sequence and the next ones in order. A gap would make the
   * log unrecoverable (the scanner refuses it), so catching it before the write is cheap insurance.
   */
  readonly nextSequence?: number;
  /** Largest data or meta record accepted (default 256 MiB, what the scanner accepts). */
  readonly maxRecordSize?: number;
}

interface AppendUnitBase {
  readonly committerId: number;
  /** The data record's sequence: ≥ 0, consecutive over the instance's life. */
  readonly sequence: number;
  /** The meta record's payload, opaque here (the coordinator encodes input watermarks in it). */
  readonly meta: Uint8Array;
}

/**
 * One commit unit. Either `payload` (one buffer or several pieces; the writer builds the 24-byte header) or
 * `record`: a buffer whose first 24 bytes are reserved for the header, which the writer fills in place, so
 * a group-commit buffer can be written and then delivered to the binding without a copy.
 */
export type AppendUnit = AppendUnitBase &
  (
    | { readonly payload: Uint8Array | readonly Uint8Array[]; readonly record?: undefined }
    | { readonly record: Uint8Array; readonly payload?: undefined }
  );

export interface AppendResult {
  /**
   * The data record exactly as written, header first, as the pieces that were written: `[header, ...payload
   * pieces]`, or `[record]` for the in-place form. The header is freshly allocated, so these can be kept and
   * sent to the binding with one vectored write (socket cork) and no copy.
   */
  readonly dataRecordPieces: readonly Uint8Array[];
  /**
   * The data record as one contiguous buffer. Free for the in-place `record` form (it is that buffer);
   * otherwise the pieces are concatenated on first access, which is one copy of the record.
   */
  readonly dataRecord: Uint8Array;
  /** Byte length of the data record (header included). */
  readonly dataLength: number;
  readonly checkBytes: bigint;
  /** File offset where the unit starts. */
  readonly offset: number;
  /** Bytes of the whole unit (data record + meta record). */
  readonly length: number;
}

class Appended implements AppendResult {
  private joined: Uint8Array | undefined;

  constructor(
    readonly dataRecordPieces: readonly Uint8Array[],
    readonly dataLength: number,
    readonly checkBytes: bigint,
    readonly offset: number,
    readonly length: number,
  ) {}

  get dataRecord(): Uint8Array {
    if (this.joined === undefined) {
      this.joined =
        this.dataRecordPieces.length === 1
          ? this.dataRecordPieces[0]!
          : Buffer.concat(this.dataRecordPieces, this.dataLength);
    }
    return this.joined;
  }
}

/**
 * Appends commit units to one log file. Each `append` is one `writev` of data header + payload + meta header
 * + meta, then one `fdatasync`; it resolves only once both are done, so a resolved append is durable. Group
 * commit (batching messages while an append is in flight) is the caller's job: appends must not overlap.
 */
export class LogWriter {
  private inFlight: Promise<unknown> | undefined;
  private closed = false;
  private failure: StorageError | undefined;

  private constructor(
    readonly path: string,
    readonly logNumber: number,
    private readonly fh: FileHandle,
    private readonly ops: FsOps,
    private bytes: number,
    private next: number | undefined,
    private readonly maxRecordSize: number,
  ) {}

  static async open(ops: FsOps, dir: string, n: number, options: LogWriterOptions = {}): Promise<LogWriter> {
    const file = path.join(dir, logFileName(n));
    const existing = options.existing ?? "fail";
    const next = options.nextSequence;
    if (next !== undefined && (!Number.isSafeInteger(next) || next < 0)) {
      throw new StorageError("INVALID_ARGUMENT", `nextSequence ${next} must be a non-negative integer`, file);
    }
    // Positional writes, not O_APPEND: after a failed append the writer cuts the file back to a known size
    // and must know exactly where the next unit goes.
    const flags = constants.O_WRONLY | constants.O_CREAT | (existing === "truncate" ? constants.O_TRUNC : 0);
    let fh: FileHandle;
    try {
      fh = await ops.open(file, flags, 0o644);
    } catch (err) {
      throw toStorageError(err, file, "open log");
    }
    try {
      const size = await ops.size(fh);
      if (size > 0 && existing === "fail") {
        throw new StorageError("ALREADY_EXISTS", `log ${file} already holds ${size} bytes`, file);
      }
      if (existing === "truncate") await ops.sync(fh);
      // fdatasync on the file does not make its directory entry durable; without this a crash could lose a
      // brand-new log file whose units were already reported durable.
      await ops.syncDir(dir);
      return new LogWriter(
        file,
        n,
        fh,
        ops,
        size,
        next,
        options.maxRecordSize ?? DEFAULT_MAX_LOG_RECORD_SIZE,
      );
    } catch (err) {
      await ops.close(fh).catch(() => undefined);
      throw toStorageError(err, file, "open log");
    }
  }

  /** Bytes in the file: existing content plus every append that succeeded. */
  get size(): number {
    return this.bytes;
  }

  /** The sequence the next append must carry, when the writer was told (`nextSequence`) or has appended. */
  get nextSequence(): number | undefined {
    return this.next;
  }

  append(unit: AppendUnit): Promise<AppendResult> {
    if (this.inFlight !== undefined) return Promise.reject(new ConcurrentAppendError(this.path));
    let p: Promise<AppendResult>;
    try {
      p = this.doAppend(unit);
    } catch (err) {
      return Promise.reject(err);
    }
    this.inFlight = p;
    const clear = (): void => {
      this.inFlight = undefined;
    };
    p.then(clear, clear);
    return p;
  }

  /** Closes the file after any in-flight append settles. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.inFlight !== undefined) await this.inFlight.catch(() => undefined);
    try {
      await this.ops.close(this.fh);
    } catch (err) {
      throw toStorageError(err, this.path, "close log");
    }
  }

  // Synchronous validation happens before the first await so that a bad argument never marks the writer
  // busy or touches the file.
  private doAppend(unit: AppendUnit): Promise<AppendResult> {
    if (this.closed)
      throw new StorageError("INVALID_STATE", `log writer for ${this.path} is closed`, this.path);
    if (this.failure !== undefined) {
      throw new StorageError(
        "INVALID_STATE",
        `log writer for ${this.path} failed earlier and cannot continue: ${this.failure.message}`,
        this.path,
        { cause: this.failure },
      );
    }
    const { committerId, sequence, meta } = unit;
    if (!Number.isInteger(committerId) || committerId < -0x80000000 || committerId > 0x7fffffff) {
      throw new StorageError(
        "INVALID_ARGUMENT",
        `committer ID ${committerId} is not a 32-bit integer`,
        this.path,
      );
    }
    if (!Number.isSafeInteger(sequence) || sequence < 0) {
      throw new StorageError(
        "INVALID_ARGUMENT",
        `data sequence ${sequence} must be a non-negative integer`,
        this.path,
      );
    }
    if (this.next !== undefined && sequence !== this.next) {
      throw new StorageError(
        "INVALID_ARGUMENT",
        `data sequence ${sequence} where ${this.next} is next; the log must stay consecutive`,
        this.path,
      );
    }

    // One 48-byte allocation holds both headers; the data header half is handed back for delivery.
    const headers = Buffer.allocUnsafe(2 * RECORD_HEADER_SIZE);
    const metaHeader = headers.subarray(RECORD_HEADER_SIZE);
    let dataRecord: Uint8Array[];
    let dataLength: number;
    let hash: bigint;
    if (unit.record !== undefined) {
      const record = unit.record;
      if (record.length < RECORD_HEADER_SIZE) {
        throw new StorageError(
          "INVALID_ARGUMENT",
          "record buffer is shorter than its 24-byte header",
          this.path,
        );
      }
      dataLength = record.length;
      this.checkRecordSize(dataLength, "data");
      hash = checkBytes(record.subarray(RECORD_HEADER_SIZE));
      writeRecordHeader(record, 0, { committerId, length: dataLength, checkBytes: hash, sequence });
      dataRecord = [record];
    } else {
      const dataHeader = headers.subarray(0, RECORD_HEADER_SIZE);
      const pieces = unit.payload instanceof Uint8Array ? [unit.payload] : unit.payload;
      dataLength = RECORD_HEADER_SIZE;
      for (const piece of pieces) dataLength += piece.length;
      this.checkRecordSize(dataLength, "data");
      if (pieces.length === 1) {
        hash = checkBytes(pieces[0]!);
      } else {
        const hasher = createCheckBytesHasher();
        for (const piece of pieces) hasher.update(piece);
        hash = hasher.digest();
      }
      writeRecordHeader(dataHeader, 0, { committerId, length: dataLength, checkBytes: hash, sequence });
      dataRecord = [dataHeader, ...pieces];
    }
    const metaLength = RECORD_HEADER_SIZE + meta.length;
    this.checkRecordSize(metaLength, "meta");
    writeRecordHeader(metaHeader, 0, {
      committerId,
      length: metaLength,
      checkBytes: checkBytes(meta),
      sequence: META_SEQUENCE,
    });

    const offset = this.bytes;
    const length = dataLength + metaLength;
    return this.writeUnit([...dataRecord, metaHeader, meta], offset, length).then(() => {
      this.bytes = offset + length;
      this.next = sequence + 1;
      return new Appended(dataRecord, dataLength, hash, offset, length);
    });
  }

  private checkRecordSize(length: number, what: string): void {
    if (length > this.maxRecordSize) {
      throw new StorageError(
        "INVALID_ARGUMENT",
        `${what} record of ${length} bytes exceeds the limit of ${this.maxRecordSize}`,
        this.path,
      );
    }
  }

  private async writeUnit(pieces: Uint8Array[], offset: number, length: number): Promise<void> {
    try {
      let done = 0;
      let rest = pieces;
      for (;;) {
        const n = await this.ops.writev(this.fh, rest, offset + done);
        done += n;
        if (done >= length) break;
        if (n === 0) throw new StorageError("IO", `write to ${this.path} made no progress`, this.path);
        rest = dropPrefix(rest, n);
      }
    } catch (err) {
      throw await this.rollBack(err, offset, "append", true);
    }
    try {
      await this.ops.datasync(this.fh);
    } catch (err) {
      throw await this.rollBack(err, offset, "fdatasync", false);
    }
  }

  /**
   * Cuts the file back to `size` (the end of the last synced unit) and decides whether the writer may go on.
   * After a failed write whose rollback was confirmed, yes: nothing unsynced remains. After a failed
   * fdatasync, no: Linux may already have dropped the dirty pages and cleared the error, so a later
   * fdatasync could succeed without the data ever reaching the disk.
   */
  private async rollBack(
    err: unknown,
    size: number,
    operation: string,
    retryable: boolean,
  ): Promise<StorageError> {
    let restored = false;
    try {
      await this.ops.truncate(this.fh, size);
      await this.ops.sync(this.fh);
      restored = (await this.ops.size(this.fh)) === size;
    } catch {
      // Best effort: the error that matters is the original one; `restored` says whether this worked.
    }
    const error = toStorageError(err, this.path, operation, restored);
    if (!(retryable && restored)) this.failure = error;
    return error;
  }
}

/** The pieces that remain after the first `n` bytes were written. */
function dropPrefix(pieces: readonly Uint8Array[], n: number): Uint8Array[] {
  let skip = n;
  let i = 0;
  while (i < pieces.length && skip >= pieces[i]!.length) {
    skip -= pieces[i]!.length;
    i++;
  }
  const rest = pieces.slice(i);
  if (skip > 0 && rest.length > 0) rest[0] = rest[0]!.subarray(skip);
  return rest;
}
