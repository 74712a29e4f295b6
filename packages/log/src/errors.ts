/**
 * Errors of this package that are not about malformed bytes. Bad input is always a `WireError` from
 * `@immortal/wire` (so one `instanceof WireError` tells a peer's fault from ours); `LogError` covers misuse
 * of the streaming API and streams that break a contract on our side.
 */
export type LogErrorCode =
  /** A checkpoint source produced more or fewer bytes than the Checkpoint message announced. */
  | "CHECKPOINT_LENGTH_MISMATCH"
  /** A stream closed or was destroyed while we waited to write to it. */
  | "STREAM_CLOSED"
  /** `push()` or `end()` after `end()`. */
  | "DECODER_ENDED"
  /** A source yielded something other than bytes (e.g. a Readable with `setEncoding`). */
  | "NOT_BYTES";

export class LogError extends Error {
  override readonly name = "LogError";
  constructor(
    readonly code: LogErrorCode,
    message: string,
    options?: { readonly cause?: unknown },
  ) {
    super(`${code}: ${message}`, options);
  }
}
