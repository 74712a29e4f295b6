import type net from "node:net";
import { type MessageStreamEvent, readEvents } from "@immortal/log";

/**
 * The binding → IC stream as decoded events: plain messages in the outgoing layout, and a Checkpoint's raw
 * bytes as chunk events. Pull-based, so a slow checkpoint writer pauses the socket instead of buffering.
 */
export function bindingEvents(socket: net.Socket): AsyncIterableIterator<MessageStreamEvent> {
  return readEvents(socket, { mode: "messages", layout: "outgoing" });
}
