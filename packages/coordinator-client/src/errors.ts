/**
 * Errors of the protocol engine. Every one extends `CoordinatorClientError`, so a caller can tell "the engine
 * stopped for a protocol reason" from a bug with one `instanceof`; each subclass is its own class (not a code
 * string) because callers react to them differently: retry a `ConnectError`, restart the process after a
 * `DisconnectedError`, fix the app after an `ImpulseDuringReplayError`.
 */
export class CoordinatorClientError extends Error {
  override readonly name: string = "CoordinatorClientError";
}

/** The coordinator could not be reached (or kept refusing the binding) within the connect timeout. */
export class ConnectError extends CoordinatorClientError {
  override readonly name = "ConnectError";
  constructor(
    message: string,
    readonly host: string,
    readonly receivePort: number,
    readonly sendPort: number,
    options?: { readonly cause?: unknown },
  ) {
    super(message, options);
  }
}

/** The coordinator closed (or reset) one of the two connections, or the process on the other side died. */
export class DisconnectedError extends CoordinatorClientError {
  override readonly name = "DisconnectedError";
}

/**
 * The coordinator sent something the protocol does not allow here: malformed bytes (the `cause` is then the
 * `WireError`), a message type that may not appear in that record, or a start-up message out of order.
 */
export class ProtocolError extends CoordinatorClientError {
  override readonly name = "ProtocolError";
}

/**
 * A logged record's sequence ID is not the one expected. Records are numbered consecutively for the whole
 * life of an instance, so a gap (or a repeat) means lost or duplicated input: continuing would diverge.
 */
export class SequenceGapError extends CoordinatorClientError {
  override readonly name = "SequenceGapError";
  constructor(
    readonly expected: number,
    readonly actual: number,
  ) {
    super(
      actual > expected
        ? `log record ${actual} arrived but ${expected} was expected: records ${expected}..${actual - 1} are missing`
        : `log record ${actual} arrived again (expected ${expected}): a record was repeated`,
    );
  }
}

/**
 * An Impulse (rpcType 2) was sent while the instance is not primary, i.e. while its log is replayed.
 * Thrown synchronously by `sendRpc`/`queue`: replayed handlers must be deterministic, and an impulse is by
 * definition a non-deterministic input, so sending one from replayed code is a bug in the app.
 */
export class ImpulseDuringReplayError extends CoordinatorClientError {
  override readonly name = "ImpulseDuringReplayError";
}

/** A checkpoint's bytes do not start with this client's envelope (see the README's "Checkpoint envelope"). */
export class CheckpointFormatError extends CoordinatorClientError {
  override readonly name = "CheckpointFormatError";
}

/**
 * Saving or loading a checkpoint failed: the app's `saveState`/`loadState` threw, the source yielded a length
 * other than the one announced, the loader returned before reading every byte, or the socket died meanwhile.
 */
export class CheckpointError extends CoordinatorClientError {
  override readonly name = "CheckpointError";
  constructor(
    readonly direction: "save" | "load",
    message: string,
    options?: { readonly cause?: unknown },
  ) {
    super(message, options);
  }
}

/** An app callback (`onMessage`, `upgrade`, a state or primary listener) threw or rejected; see `cause`. */
export class HandlerError extends CoordinatorClientError {
  override readonly name = "HandlerError";
}

/** The client was used after `close()` or after it stopped for another reason. */
export class ClientClosedError extends CoordinatorClientError {
  override readonly name = "ClientClosedError";
}
