/**
 * Every error this package throws on purpose is a `CheckpointError`. The subclasses tell *whose* fault it
 * is, which is what a binding needs to decide what to do:
 *
 * - `NotSerializableError`: the live state holds something we cannot write (our caller's bug; fix the state
 *   or register a class). Thrown before a single byte is produced.
 * - `DeserializationError`: a payload is well framed but its content does not decode (unknown tag, class
 *   not registered here, bad field). Often a deployment mismatch rather than corruption.
 * - `CheckpointFormatError`: the bytes around the payload are wrong (magic, envelope version, format id,
 *   lengths, frames). Corruption, truncation, or a checkpoint written by a newer binary.
 * - `MigrationError`: the checkpoint decoded but cannot be brought to the current app version.
 * - `RegistryError`: misuse of `registerClass`.
 */
export abstract class CheckpointError extends Error {
  abstract readonly code: string;
}

export type NotSerializableCode =
  /** A function, symbol, WeakMap, Promise, … or an instance of a class that is not registered. */
  | "UNSUPPORTED_VALUE"
  /** Reading a property (a getter) threw. */
  | "GETTER_THREW"
  /** The value is nested deeper than the call stack allows. */
  | "TOO_DEEP"
  /** A single string, bigint or frame is larger than the encoder can produce. */
  | "TOO_LARGE";

export class NotSerializableError extends CheckpointError {
  override readonly name = "NotSerializableError";
  constructor(
    readonly code: NotSerializableCode,
    /** Where the offending value sits, e.g. `state.orders[3].customer` or `state.byId.get("a")`. */
    readonly path: string,
    /** What the value is, e.g. `function`, `instance of class Customer`. */
    readonly valueKind: string,
    /** How to fix it, e.g. `register the class with registerClass(Customer)`. */
    readonly hint: string,
    options?: { readonly cause?: unknown },
  ) {
    super(`${path}: cannot serialize ${valueKind}${hint ? `; ${hint}` : ""}`, options);
  }
}

export type DeserializationCode =
  /** The payload is not valid JSON / MessagePack, or is cut short. */
  | "MALFORMED"
  /** A tag or extension type this version does not know. */
  | "UNKNOWN_TAG"
  /** A registered-class instance whose class name is not registered in this process. */
  | "UNKNOWN_CLASS"
  /** A field of a tagged value has the wrong type or range. */
  | "BAD_VALUE"
  /** A reference to an object id that was not defined before it. */
  | "BAD_REFERENCE";

export class DeserializationError extends CheckpointError {
  override readonly name = "DeserializationError";
  constructor(
    readonly code: DeserializationCode,
    message: string,
    options?: { readonly cause?: unknown },
  ) {
    super(`${code}: ${message}`, options);
  }
}

export type CheckpointFormatCode =
  /** The envelope does not start with the magic bytes. */
  | "BAD_MAGIC"
  /** The envelope was written by a newer (or unknown) envelope version. */
  | "UNSUPPORTED_ENVELOPE_VERSION"
  /** No serializer for the envelope's format id was given to the reader. */
  | "UNKNOWN_FORMAT"
  /** Reserved header bits are set: written by a newer envelope we do not understand. */
  | "UNSUPPORTED_FLAGS"
  /** Input ended before the header, a frame or the announced payload was complete. */
  | "TRUNCATED"
  /** Bytes after the end of the payload or of the framed value. */
  | "TRAILING_BYTES"
  /** A frame of the streamed layout is invalid (type, length, nesting, sizes). */
  | "BAD_FRAME"
  /** A length does not fit what this process can hold (over 2^53, or over a configured maximum). */
  | "TOO_LARGE"
  /** The streamed payload's size changed between the measuring pass and the write (state mutated meanwhile). */
  | "LENGTH_MISMATCH"
  /** A header field given to the writer is out of range (app version, format id). */
  | "BAD_HEADER_FIELD";

export class CheckpointFormatError extends CheckpointError {
  override readonly name = "CheckpointFormatError";
  constructor(
    readonly code: CheckpointFormatCode,
    message: string,
    options?: { readonly cause?: unknown },
  ) {
    super(`${code}: ${message}`, options);
  }
}

export type MigrationErrorCode =
  /** No migration registered for one step between the stored and the current version. */
  | "MISSING_MIGRATION"
  /** The checkpoint was written by a newer app version than the running one. */
  | "STATE_TOO_NEW"
  /** A migration function threw (the original error is the `cause`). */
  | "MIGRATION_FAILED"
  /** `currentVersion` is not an integer in [0, 2^32). */
  | "BAD_VERSION";

export class MigrationError extends CheckpointError {
  override readonly name = "MigrationError";
  constructor(
    readonly code: MigrationErrorCode,
    message: string,
    /** The version the state was at when the error happened. */
    readonly fromVersion: number,
    options?: { readonly cause?: unknown },
  ) {
    super(`${code}: ${message}`, options);
  }
}

export type RegistryErrorCode =
  /** The name is empty (anonymous class) or already taken by another class. */
  | "BAD_NAME"
  /** The class is already registered under another name, or cannot be registered at all. */
  | "BAD_CLASS";

export class RegistryError extends CheckpointError {
  override readonly name = "RegistryError";
  constructor(
    readonly code: RegistryErrorCode,
    message: string,
  ) {
    super(`${code}: ${message}`);
  }
}
