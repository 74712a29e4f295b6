import type { FileHandle } from "node:fs/promises";
import * as path from "node:path";
import {
  type CheckBytesHasher,
  createCheckBytesHasher,
  readIntFixed,
  readLongFixed,
  readULongFixed,
  writeIntFixed,
  writeLongFixed,
} from "@immortal/wire";
import {
  CheckpointFormatError,
  CheckpointLengthError,
  ChecksumMismatchError,
  StorageError,
  toStorageError,
} from "./errors.js";
import { type FsOps, readFully } from "./fs-ops.js";
import { checkpointFileName, TEMP_SUFFIX } from "./layout.js";

/**
 * Our checkpoint file format (not AMBROSIA's; the coordinator owns what goes inside `icState`):
 *
 *   [8 bytes magic "IMMCHK01"][IntFixed icStateLength][icState][LongFixed appStateLength][app state]
 *   [LongFixed xxHash64 (seed 0) of every byte before this trailer]
 *
 * The app-state length is 64-bit and comes before the bytes, as in the binding's Checkpoint message, so the
 * whole file is written and hashed in one pass without ever holding the app state in memory.
 */
export const CHECKPOINT_MAGIC = Buffer.from("IMMCHK01", "ascii");
const PREFIX_SIZE = CHECKPOINT_MAGIC.length + 4;
const LENGTH_SIZE = 8;
const TRAILER_SIZE = 8;
/** Smallest possible checkpoint file: empty IC state and app state. */
export const MIN_CHECKPOINT_SIZE = PREFIX_SIZE + LENGTH_SIZE + TRAILER_SIZE;
const MAX_APP_STATE_LENGTH = (1n << 63n) - 1n;

const STAGING_SIZE = 1024 * 1024;
const DEFAULT_READ_CHUNK = 1024 * 1024;

type WriterState = "new" | "app" | "committed" | "aborted";

export interface CheckpointWriterOptions {
  /** Replace an already published checkpoint with the same number (default: refuse). */
  readonly overwrite?: boolean;
  /** Called once when the writer has committed or aborted (lets the owner stop protecting its .tmp). */
  readonly onSettled?: () => void;
}

/**
 * Writes `serverchkpt<n>.tmp`, then publishes it as `serverchkpt<n>` by an atomic rename once it is complete
 * and synced, so a checkpoint file under its final name is always whole. Any failure (including a length
 * mismatch) deletes the temporary file; nothing is ever published half-written.
 */
export class CheckpointWriter {
  private state: WriterState = "new";
  private readonly hasher: CheckBytesHasher = createCheckBytesHasher();
  /** Small app-state chunks are gathered here so that a stream of tiny chunks does not become tiny writes. */
  private readonly staging = Buffer.allocUnsafe(STAGING_SIZE);
  private staged = 0;
  private position = 0;
  /** The app-state length given to `writeIcState`, if any. */
  private declared: bigint | undefined;
  /** Whether the running hash is kept (only when the length was declared; otherwise commit re-reads). */
  private hashing = true;
  private lengthOffset = 0;
  private written = 0n;
  private busy = false;

  private constructor(
    readonly path: string,
    readonly tmpPath: string,
    readonly checkpointNumber: number,
    private readonly dir: string,
    private readonly fh: FileHandle,
    private readonly ops: FsOps,
    private readonly onSettled: (() => void) | undefined,
  ) {}

  static async create(
    ops: FsOps,
    dir: string,
    n: number,
    options: CheckpointWriterOptions = {},
  ): Promise<CheckpointWriter> {
    const file = path.join(dir, checkpointFileName(n));
    const tmp = file + TEMP_SUFFIX;
    try {
      if (!options.overwrite && (await ops.exists(file))) {
        throw new StorageError("ALREADY_EXISTS", `checkpoint ${file} is already published`, file);
      }
      // "w+" truncates a leftover .tmp from a crash during an earlier attempt; read access is for commit's
      // re-hash when the app-state length was not declared up front.
      const fh = await ops.open(tmp, "w+", 0o644);
      return new CheckpointWriter(file, tmp, n, dir, fh, ops, options.onSettled);
    } catch (err) {
      throw toStorageError(err, tmp, "create checkpoint");
    }
  }

  /** Bytes of app state accepted so far. */
  get appStateWritten(): bigint {
    return this.written;
  }

  /**
   * Writes the IC's own state. Must be called exactly once, first. Pass the app state's length when it is
   * known (the binding's Checkpoint message carries it before the bytes): then the file is written and
   * hashed in a single pass. Without it, the length field is filled in at `commit`, which must then re-read
   * the whole file to hash it — correct, but twice the I/O.
   */
  async writeIcState(icState: Uint8Array, appStateLength?: number | bigint): Promise<void> {
    this.expectState("new", "writeIcState");
    const declared = appStateLength === undefined ? undefined : BigInt(appStateLength);
    if (declared !== undefined && (declared < 0n || declared > MAX_APP_STATE_LENGTH)) {
      await this.fail();
      throw new StorageError(
        "INVALID_ARGUMENT",
        `app state length ${declared} is out of range`,
        this.tmpPath,
      );
    }
    if (icState.length > 0x7fffffff) {
      await this.fail();
      throw new StorageError(
        "INVALID_ARGUMENT",
        `IC state of ${icState.length} bytes is too large`,
        this.tmpPath,
      );
    }
    this.declared = declared;
    this.hashing = declared !== undefined;
    this.state = "app";
    const prefix = Buffer.allocUnsafe(PREFIX_SIZE);
    CHECKPOINT_MAGIC.copy(prefix, 0);
    writeIntFixed(prefix, CHECKPOINT_MAGIC.length, icState.length);
    const length = Buffer.alloc(LENGTH_SIZE);
    if (declared !== undefined) writeLongFixed(length, 0, declared);
    this.lengthOffset = PREFIX_SIZE + icState.length;
    await this.guard(async () => {
      await this.put(prefix);
      await this.put(icState);
      await this.put(length);
    });
  }

  /**
   * Appends app-state bytes. Resolves once the bytes are copied or handed to the OS, so awaiting each call
   * gives back-pressure; the chunk may be reused afterwards. More bytes than declared is an error.
   */
  async appendAppState(chunk: Uint8Array): Promise<void> {
    this.expectState("app", "appendAppState");
    const after = this.written + BigInt(chunk.length);
    if (this.declared !== undefined && after > this.declared) {
      await this.fail();
      throw new CheckpointLengthError(this.path, this.declared, after);
    }
    this.written = after;
    await this.guard(() => this.put(chunk));
  }

  /**
   * Checks the app-state length (against the declared one and `expectedAppLength`, whichever are given),
   * writes the trailer, fsyncs the file, renames it into place and fsyncs the directory. Resolves once the
   * checkpoint is durable under its final name. A length mismatch deletes the temporary file.
   */
  async commit(expectedAppLength?: number | bigint): Promise<void> {
    this.expectState("app", "commit");
    const expected = expectedAppLength === undefined ? undefined : BigInt(expectedAppLength);
    if (expected !== undefined && this.declared !== undefined && expected !== this.declared) {
      await this.fail();
      throw new CheckpointLengthError(this.path, expected, this.declared);
    }
    const length = expected ?? this.declared ?? this.written;
    if (this.written !== length) {
      await this.fail();
      throw new CheckpointLengthError(this.path, length, this.written);
    }
    await this.guard(async () => {
      await this.flush();
      let hash: bigint;
      if (this.hashing) {
        hash = this.hasher.digest();
      } else {
        const field = Buffer.allocUnsafe(LENGTH_SIZE);
        writeLongFixed(field, 0, length);
        await this.writeFully(field, this.lengthOffset);
        hash = await this.hashFile();
      }
      const trailer = Buffer.allocUnsafe(TRAILER_SIZE);
      writeLongFixed(trailer, 0, hash);
      await this.writeFully(trailer, this.position);
      this.position += TRAILER_SIZE;
      // A full fsync (not fdatasync): the rename below must never expose a file whose size or blocks are
      // not yet on disk.
      await this.ops.sync(this.fh);
      await this.ops.close(this.fh);
      await this.ops.rename(this.tmpPath, this.path);
      // From here the checkpoint is complete under its final name: a failing directory fsync is reported,
      // but the file must not be deleted.
      this.state = "committed";
      this.onSettled?.();
      await this.ops.syncDir(this.dir);
    });
  }

  /** Discards the checkpoint: closes and deletes the temporary file. Idempotent; a no-op after commit. */
  async abort(): Promise<void> {
    if (this.state === "committed" || this.state === "aborted") return;
    await this.fail();
  }

  private expectState(state: WriterState, operation: string): void {
    if (this.state !== state) {
      throw new StorageError(
        "INVALID_STATE",
        `${operation} on checkpoint writer ${this.tmpPath} in state ${this.state}`,
        this.tmpPath,
      );
    }
  }

  /** Runs an I/O step; on failure deletes the temporary file and rethrows as a typed error. */
  private async guard(step: () => Promise<void>): Promise<void> {
    // Overlapping calls would interleave writes at the same file position; the caller must await each one.
    if (this.busy) {
      await this.fail();
      throw new StorageError(
        "INVALID_STATE",
        `overlapping calls on checkpoint writer ${this.tmpPath}`,
        this.tmpPath,
      );
    }
    this.busy = true;
    try {
      await step();
    } catch (err) {
      if (this.state !== "committed") await this.fail();
      throw toStorageError(err, this.tmpPath, "checkpoint write");
    } finally {
      this.busy = false;
    }
  }

  private async fail(): Promise<void> {
    this.state = "aborted";
    this.onSettled?.();
    await this.ops.close(this.fh).catch(() => undefined);
    await this.ops.unlink(this.tmpPath).catch(() => undefined);
  }

  private async put(bytes: Uint8Array): Promise<void> {
    if (this.hashing) this.hasher.update(bytes);
    if (bytes.length <= STAGING_SIZE - this.staged) {
      this.staging.set(bytes, this.staged);
      this.staged += bytes.length;
      if (this.staged === STAGING_SIZE) await this.flush();
      return;
    }
    await this.flush();
    if (bytes.length < STAGING_SIZE) {
      this.staging.set(bytes, 0);
      this.staged = bytes.length;
    } else {
      await this.writeAt(bytes, 0, bytes.length);
    }
  }

  private async flush(): Promise<void> {
    if (this.staged === 0) return;
    await this.writeFully(this.staging.subarray(0, this.staged), this.position);
    this.position += this.staged;
    this.staged = 0;
  }

  private async writeAt(bytes: Uint8Array, offset: number, length: number): Promise<void> {
    await this.writeFully(bytes.subarray(offset, offset + length), this.position);
    this.position += length;
  }

  private async writeFully(bytes: Uint8Array, position: number): Promise<void> {
    let done = 0;
    while (done < bytes.length) {
      const n = await this.ops.write(this.fh, bytes, done, bytes.length - done, position + done);
      if (n === 0) throw new StorageError("IO", `write to ${this.tmpPath} made no progress`, this.tmpPath);
      done += n;
    }
  }

  /** Hash of everything written so far, read back from the file (only when the length came late). */
  private async hashFile(): Promise<bigint> {
    const hasher = createCheckBytesHasher();
    const buf = this.staging;
    for (let pos = 0; pos < this.position; ) {
      const n = Math.min(buf.length, this.position - pos);
      await readFully(this.ops, this.fh, this.tmpPath, buf, 0, n, pos);
      hasher.update(buf.subarray(0, n));
      pos += n;
    }
    return hasher.digest();
  }
}

/**
 * An open checkpoint: the IC state is read eagerly (it is the coordinator's own, bounded state), the app
 * state is streamed. Opening checks the magic and that the lengths add up to the file size; the content hash
 * is checked by `verify()` or at the end of `appState()`.
 */
export class CheckpointReader {
  private closed = false;

  private constructor(
    readonly path: string,
    readonly checkpointNumber: number,
    readonly icState: Uint8Array,
    /** 64-bit: app state can exceed 4 GiB. */
    readonly appStateLength: bigint,
    readonly fileSize: number,
    private readonly prefix: Buffer,
    private readonly lengthField: Buffer,
    private readonly trailer: bigint,
    private readonly fh: FileHandle,
    private readonly ops: FsOps,
  ) {}

  static async open(ops: FsOps, dir: string, n: number): Promise<CheckpointReader> {
    const file = path.join(dir, checkpointFileName(n));
    let fh: FileHandle;
    try {
      fh = await ops.open(file, "r");
    } catch (err) {
      throw toStorageError(err, file, "open checkpoint");
    }
    try {
      const fileSize = await ops.size(fh);
      if (fileSize < MIN_CHECKPOINT_SIZE) {
        throw new CheckpointFormatError(file, `${fileSize} bytes is shorter than the smallest checkpoint`);
      }
      const prefix = Buffer.allocUnsafe(PREFIX_SIZE);
      await readFully(ops, fh, file, prefix, 0, PREFIX_SIZE, 0);
      if (!prefix.subarray(0, CHECKPOINT_MAGIC.length).equals(CHECKPOINT_MAGIC)) {
        throw new CheckpointFormatError(file, "bad magic; not a checkpoint in our format");
      }
      const icLength = readIntFixed(prefix, CHECKPOINT_MAGIC.length);
      // Check against the file size before allocating, so a damaged length cannot ask for gigabytes.
      if (icLength < 0 || icLength > fileSize - MIN_CHECKPOINT_SIZE) {
        throw new CheckpointFormatError(
          file,
          `IC state length ${icLength} does not fit a ${fileSize}-byte file`,
        );
      }
      const icState = Buffer.allocUnsafe(icLength);
      await readFully(ops, fh, file, icState, 0, icLength, PREFIX_SIZE);
      const lengthField = Buffer.allocUnsafe(LENGTH_SIZE);
      await readFully(ops, fh, file, lengthField, 0, LENGTH_SIZE, PREFIX_SIZE + icLength);
      const appStateLength = readLongFixed(lengthField, 0);
      const expectedSize = BigInt(MIN_CHECKPOINT_SIZE + icLength) + appStateLength;
      if (appStateLength < 0n || expectedSize !== BigInt(fileSize)) {
        throw new CheckpointFormatError(
          file,
          `app state length ${appStateLength} makes ${expectedSize} bytes, but the file has ${fileSize}`,
        );
      }
      const trailerBytes = Buffer.allocUnsafe(TRAILER_SIZE);
      await readFully(ops, fh, file, trailerBytes, 0, TRAILER_SIZE, fileSize - TRAILER_SIZE);
      return new CheckpointReader(
        file,
        n,
        icState,
        appStateLength,
        fileSize,
        prefix,
        lengthField,
        readULongFixed(trailerBytes, 0),
        fh,
        ops,
      );
    } catch (err) {
      await ops.close(fh).catch(() => undefined);
      throw toStorageError(err, file, "open checkpoint");
    }
  }

  /**
   * Streams the app state in fresh chunks of at most `chunkSize` bytes (default 1 MiB), hashing as it goes;
   * after the last chunk it throws `ChecksumMismatchError` if the file is damaged. A consumer that must not
   * act on damaged bytes at all calls `verify()` first.
   */
  appState(options: { chunkSize?: number } = {}): AsyncIterable<Uint8Array> {
    const chunkSize = Math.max(1, options.chunkSize ?? DEFAULT_READ_CHUNK);
    return {
      [Symbol.asyncIterator]: () => this.stream(chunkSize, false),
    };
  }

  /** Reads the whole file once and checks the trailer hash; throws `ChecksumMismatchError` if it differs. */
  async verify(): Promise<void> {
    const it = this.stream(DEFAULT_READ_CHUNK, true);
    for (let r = await it.next(); !r.done; r = await it.next()) {
      // The chunks are only hashed.
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.ops.close(this.fh).catch(() => undefined);
  }

  private async *stream(chunkSize: number, reuse: boolean): AsyncGenerator<Uint8Array, void, undefined> {
    if (this.closed) throw new StorageError("INVALID_STATE", `checkpoint ${this.path} is closed`, this.path);
    const hasher = createCheckBytesHasher();
    hasher.update(this.prefix).update(this.icState).update(this.lengthField);
    const start = this.prefix.length + this.icState.length + LENGTH_SIZE;
    const end = this.fileSize - TRAILER_SIZE;
    // verify() reuses one buffer; chunks handed to a consumer are fresh, since it may keep them.
    let buf = reuse ? Buffer.allocUnsafe(Math.min(chunkSize, Math.max(1, end - start))) : undefined;
    for (let pos = start; pos < end; ) {
      const n = Math.min(chunkSize, end - pos);
      if (!reuse || buf === undefined) buf = Buffer.allocUnsafe(n);
      try {
        await readFully(this.ops, this.fh, this.path, buf, 0, n, pos);
      } catch (err) {
        throw toStorageError(err, this.path, "read checkpoint");
      }
      const chunk = buf.subarray(0, n);
      hasher.update(chunk);
      pos += n;
      yield chunk;
    }
    const actual = hasher.digest();
    if (actual !== this.trailer) throw new ChecksumMismatchError(this.path, this.trailer, actual);
  }
}
