import type { Writable } from "node:stream";
import {
  CHECKPOINT_SEQUENCE,
  type Checkpoint,
  encodeMessage,
  encodeRecord,
  MessageType,
} from "@immortal/wire";
import { LogError } from "./errors.js";
import type { ByteSource } from "./reader.js";

/**
 * Writes several buffers as one corked batch (a socket turns that into a single writev). Returns `false`
 * when the stream's buffer is full: wait for `drained(stream)` before writing more.
 */
export function writeBuffers(stream: Writable, buffers: readonly Uint8Array[]): boolean {
  if (buffers.length === 1) return stream.write(buffers[0]);
  stream.cork();
  let ok = true;
  for (const b of buffers) ok = stream.write(b) && ok;
  stream.uncork();
  return ok;
}

/**
 * Resolves once `stream` can take more data (at once if it is not over its high-water mark). Rejects with a
 * `STREAM_CLOSED` `LogError` (the stream's error as `cause`) if it errors or closes first, so a writer
 * waiting on a dead peer never hangs.
 */
export function drained(stream: Writable): Promise<void> {
  if (stream.destroyed || stream.writableEnded) {
    return Promise.reject(new LogError("STREAM_CLOSED", "the stream is closed", { cause: stream.errored }));
  }
  if (!stream.writableNeedDrain) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const cleanup = (): void => {
      stream.off("drain", onDrain);
      stream.off("error", onError);
      stream.off("close", onClose);
    };
    const onDrain = (): void => {
      cleanup();
      resolve();
    };
    const onError = (err: Error): void => {
      cleanup();
      reject(new LogError("STREAM_CLOSED", `the stream failed: ${err.message}`, { cause: err }));
    };
    const onClose = (): void => {
      cleanup();
      reject(new LogError("STREAM_CLOSED", "the stream closed before it drained"));
    };
    stream.on("drain", onDrain);
    stream.on("error", onError);
    stream.on("close", onClose);
  });
}

export interface WriteCheckpointOptions {
  /**
   * Wrap the Checkpoint message in a log record (IC → binding direction). The sequence defaults to −2, the
   * recovery-checkpoint record, which gets check bytes 0 as AMBROSIA sends it.
   */
  readonly record?: { readonly committerId: number; readonly sequence?: number };
}

/**
 * Streams a checkpoint out: the Checkpoint frame (or record), then the bytes of `source` with back-pressure.
 * Throws `CHECKPOINT_LENGTH_MISMATCH` if `source` yields more than `length` bytes (before writing the chunk
 * that would overrun) or fewer. Either way the peer has seen a partial checkpoint, so the caller must close
 * the connection. Write any pending messages before calling this. `source` must not reuse a chunk's memory
 * after yielding it (the stream may still hold it).
 */
export async function writeCheckpoint(
  stream: Writable,
  length: bigint,
  source: ByteSource,
  options: WriteCheckpointOptions = {},
): Promise<void> {
  const message: Checkpoint = { type: MessageType.Checkpoint, length };
  const frame =
    options.record === undefined
      ? encodeMessage(message)
      : encodeRecord({
          committerId: options.record.committerId,
          sequence: options.record.sequence ?? CHECKPOINT_SEQUENCE,
          messages: [message],
        });
  if (!stream.write(frame)) await drained(stream);
  let sent = 0n;
  for await (const chunk of source) {
    if (!(chunk instanceof Uint8Array))
      throw new LogError("NOT_BYTES", "checkpoint source yielded a non-byte chunk");
    if (chunk.length === 0) continue;
    const next = sent + BigInt(chunk.length);
    if (next > length) {
      throw new LogError(
        "CHECKPOINT_LENGTH_MISMATCH",
        `source yields more than the announced ${length} bytes`,
      );
    }
    sent = next;
    if (!stream.write(chunk)) await drained(stream);
  }
  if (sent !== length) {
    throw new LogError(
      "CHECKPOINT_LENGTH_MISMATCH",
      `source yielded ${sent} of the announced ${length} bytes`,
    );
  }
}
