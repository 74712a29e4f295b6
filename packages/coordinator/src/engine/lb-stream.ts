import type net from "node:net";
import { type ForwardingStreamEvent, type MessageStreamEvent, readEvents } from "@immortal/log";
import { CHECKPOINT_SEQUENCE, encodeRecord, MessageType } from "@immortal/wire";
import type { CheckpointReader } from "../storage/index.js";

/**
 * The binding → IC stream as decoded events: plain messages in the outgoing layout, and a Checkpoint's raw
 * bytes as chunk events. Pull-based, so a slow checkpoint writer pauses the socket instead of buffering.
 */
export function bindingEvents(socket: net.Socket): AsyncIterableIterator<MessageStreamEvent> {
  return readEvents(socket, { mode: "messages", layout: "outgoing" });
}

/** The same, with RPCBatch frames undecoded: a session's core forwards their RPCs' bytes as they are. */
export function bindingForwardingEvents(socket: net.Socket): AsyncIterableIterator<ForwardingStreamEvent> {
  return readEvents(socket, { mode: "messages", layout: "outgoing", rawBatches: true });
}

/**
 * Sends a recovery checkpoint to the binding: its own record first (sequence −2, check bytes 0 as AMBROSIA
 * sends it), then the app's state bytes, streamed from the file outside any record framing. Closes the reader.
 */
export async function sendCheckpoint(
  reader: CheckpointReader,
  committerId: number,
  write: (bytes: Uint8Array) => Promise<void>,
): Promise<void> {
  await write(
    encodeRecord({
      committerId,
      sequence: CHECKPOINT_SEQUENCE,
      messages: [{ type: MessageType.Checkpoint, length: BigInt(reader.appStateLength) }],
    }),
  );
  for await (const chunk of reader.appState()) await write(chunk);
  await reader.close();
}
