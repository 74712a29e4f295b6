/**
 * Every failure of the storage layer is a `StorageError` (or a subclass), so the coordinator can tell
 * "the disk or the files are in a state we must refuse" from a bug with one `instanceof`, and can print a
 * clear refusal (disk full, corrupt log) instead of a raw errno.
 */
export type StorageErrorCode =
  /** An operating-system I/O error other than the ones below; `sysCode` holds the errno name. */
  | "IO"
  /** A log, checkpoint or instance directory that was asked for does not exist. */
  | "NOT_FOUND"
  /** Refused to overwrite a log or checkpoint that already has content. */
  | "ALREADY_EXISTS"
  /** ENOSPC / EDQUOT while writing or syncing. */
  | "DISK_FULL"
  /** A log file holds an invalid commit unit that is not a torn tail. */
  | "LOG_CORRUPTION"
  /** A checkpoint's trailer hash does not match its content. */
  | "CHECKSUM_MISMATCH"
  /** A checkpoint file is not in our format (bad magic, lengths that do not add up to the file size). */
  | "CHECKPOINT_FORMAT"
  /** The app state streamed into a checkpoint does not have the declared length. */
  | "CHECKPOINT_LENGTH"
  /** A second `append` was started while one was still in flight (the committer must serialise). */
  | "CONCURRENT_APPEND"
  /** An operation on a closed, aborted, committed or failed writer, or calls in the wrong order. */
  | "INVALID_STATE"
  /** An argument outside what the format can hold (record too large, negative sequence, bad name). */
  | "INVALID_ARGUMENT";

export class StorageError extends Error {
  override readonly name: string = "StorageError";
  constructor(
    readonly code: StorageErrorCode,
    message: string,
    /** The file or directory concerned, when there is one. */
    readonly path?: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }

  /** The errno name (`ENOENT`, `EIO`, …) of the underlying Node error, if any. */
  get sysCode(): string | undefined {
    return errnoCode(this.cause);
  }
}

/** What is wrong with the first invalid commit unit of a log file. */
export type LogDefect =
  /** Fewer than 24 bytes left where a record header should start. */
  | "TRUNCATED_HEADER"
  /** Everything from this point to the end of the file is zero bytes (preallocated space). */
  | "ZERO_FILLED"
  /** A record length field below 24 or above the record-size limit. */
  | "BAD_LENGTH"
  /** A record whose length reaches past the end of the file. */
  | "BEYOND_EOF"
  /** The data record's payload does not hash to its check bytes. */
  | "BAD_CHECK_BYTES"
  /** An intact record written by a different committer. */
  | "COMMITTER_MISMATCH"
  /** An intact data record whose sequence is not the expected next one (gap, repeat, or a meta record). */
  | "SEQUENCE_MISMATCH"
  /** The data record is not followed by a complete meta record. */
  | "INCOMPLETE_META"
  /** The record after the data record is damaged, or is intact but not this unit's meta record. */
  | "BAD_META";

/** Why an invalid unit was judged to be damage before the tail rather than a torn tail. */
export type CorruptionKind =
  /** The bad unit is in a log file that is not the newest one; only the newest can have a torn tail. */
  | "NOT_LAST_LOG"
  /** A valid record follows the bad unit, so data after the damage would be lost by truncating. */
  | "VALID_DATA_AFTER";

/**
 * A log file is damaged somewhere other than its tail. Recovery must stop; nothing on disk was changed, so
 * an operator can inspect or restore the file.
 */
export class LogCorruptionError extends StorageError {
  override readonly name: string = "LogCorruptionError";
  constructor(
    readonly file: string,
    /** Offset of the first invalid commit unit (the end of the last valid one). */
    readonly offset: number,
    /** What is wrong with the unit at `offset`. */
    readonly reason: LogDefect,
    /** Why that is not a torn tail. */
    readonly kind: CorruptionKind,
    readonly detail: string,
    /** For `VALID_DATA_AFTER`: where the valid record after the damage starts. */
    readonly validRecordAt?: number,
  ) {
    super(
      "LOG_CORRUPTION",
      `corrupt log ${file} at byte ${offset}: ${reason} (${detail}); ${describeKind(kind, validRecordAt)}. ` +
        "Nothing on disk was changed.",
      file,
    );
  }
}

/**
 * The disk (or quota) is full. The file was cut back to the end of the last fully synced unit when
 * `fileRestored` is true; either way no unit that was reported durable was lost.
 */
export class DiskFullError extends StorageError {
  override readonly name: string = "DiskFullError";
  constructor(
    path: string,
    /** What was being done: "append", "fdatasync", "checkpoint write", … */
    readonly operation: string,
    /** Whether the file was restored to its size before the failed operation. */
    readonly fileRestored: boolean,
    cause: unknown,
  ) {
    super(
      "DISK_FULL",
      `disk full (${errnoCode(cause) ?? "ENOSPC"}) during ${operation} on ${path}` +
        (fileRestored ? "; the file was cut back to its last synced size" : ""),
      path,
      { cause },
    );
  }
}

/** A checkpoint's content does not hash to its trailer: the file is damaged and must not be used. */
export class ChecksumMismatchError extends StorageError {
  override readonly name: string = "ChecksumMismatchError";
  constructor(
    path: string,
    readonly expected: bigint,
    readonly actual: bigint,
  ) {
    super(
      "CHECKSUM_MISMATCH",
      `checkpoint ${path}: trailer hash ${expected.toString(16)} but the content hashes to ${actual.toString(16)}`,
      path,
    );
  }
}

/** A checkpoint file that is not in our format or is cut short. */
export class CheckpointFormatError extends StorageError {
  override readonly name: string = "CheckpointFormatError";
  constructor(path: string, detail: string) {
    super("CHECKPOINT_FORMAT", `checkpoint ${path}: ${detail}`, path);
  }
}

/** The app state written to a checkpoint is longer or shorter than declared; nothing was published. */
export class CheckpointLengthError extends StorageError {
  override readonly name: string = "CheckpointLengthError";
  constructor(
    path: string,
    readonly expected: bigint,
    readonly actual: bigint,
  ) {
    super(
      "CHECKPOINT_LENGTH",
      `checkpoint ${path}: app state of ${actual} bytes where ${expected} were declared`,
      path,
    );
  }
}

/** Two appends overlapped on one log writer; the committer must wait for each to finish. */
export class ConcurrentAppendError extends StorageError {
  override readonly name: string = "ConcurrentAppendError";
  constructor(path: string) {
    super("CONCURRENT_APPEND", `append to ${path} while another append is still in flight`, path);
  }
}

function describeKind(kind: CorruptionKind, validRecordAt: number | undefined): string {
  switch (kind) {
    case "NOT_LAST_LOG":
      return "the file is not the newest log, so this cannot be a torn tail";
    case "VALID_DATA_AFTER":
      return `a valid record follows at byte ${validRecordAt}, so truncating would lose committed data`;
  }
}

export function errnoCode(err: unknown): string | undefined {
  if (typeof err === "object" && err !== null && "code" in err) {
    const code = (err as { code: unknown }).code;
    if (typeof code === "string") return code;
  }
  return undefined;
}

export function isDiskFull(err: unknown): boolean {
  const code = errnoCode(err);
  return code === "ENOSPC" || code === "EDQUOT";
}

/**
 * Wraps an error from Node's fs in a typed storage error. Errors that already are storage errors pass
 * through, so a helper can call this without knowing where the failure came from.
 */
export function toStorageError(
  err: unknown,
  path: string,
  operation: string,
  fileRestored = false,
): StorageError {
  if (err instanceof StorageError) return err;
  if (isDiskFull(err)) return new DiskFullError(path, operation, fileRestored, err);
  const code = errnoCode(err);
  if (code === "ENOENT")
    return new StorageError("NOT_FOUND", `${operation}: ${path} does not exist`, path, { cause: err });
  const text = err instanceof Error ? err.message : String(err);
  return new StorageError("IO", `${operation} on ${path} failed: ${text}`, path, { cause: err });
}
