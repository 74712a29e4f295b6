import net from "node:net";
import type { Logger } from "pino";
import { FormatError } from "./bin.js";
import { encodeData, encodeHello, LinkFrameReader, LinkFrameType } from "./link-protocol.js";
import type { OutputStream } from "./outputs.js";
import type { InputWatermark } from "./state.js";

/** Where a destination's coordinator listens right now, or why it cannot be reached. */
export type AddressLookup = (
  destination: string,
) => Promise<{ host: string; port: number } | { unavailable: string }>;

export interface OutboundLinkOptions {
  self: string;
  selfRegistrationId: string;
  lookup: AddressLookup;
  logger: Logger;
  /** Largest DATA frame to build before sending (entries beyond go in the next frame). */
  maxBatchBytes?: number;
  /** Called after an acknowledgement trimmed the stream. */
  onAck?: () => void;
}

const MIN_BACKOFF_MS = 50;
const MAX_BACKOFF_MS = 2000;

/**
 * The sending half of one (this instance → destination) stream. Connects to the destination's coordinator,
 * learns from WELCOME how far it has durably logged, resends everything after that, then streams new entries
 * as the binding produces them. Every failure (destination down, refused, reset) leads to a reconnect with
 * exponential backoff; nothing is dropped until the receiver acknowledges it.
 */
export class OutboundLink {
  private socket: net.Socket | undefined;
  private open = false;
  private closed = false;
  private backoff = MIN_BACKOFF_MS;
  private timer: NodeJS.Timeout | undefined;
  private flushScheduled = false;
  private blocked = false;
  private lastProblem = "";
  /** Counters for observability. */
  readonly stats = { connects: 0, sentEntries: 0, sentBytes: 0, acks: 0 };

  constructor(
    readonly destination: string,
    private readonly stream: OutputStream,
    private readonly opts: OutboundLinkOptions,
  ) {
    void this.connect();
  }

  /** New entries were added to the stream. */
  notify(): void {
    if (!this.open || this.flushScheduled) return;
    this.flushScheduled = true;
    setImmediate(() => {
      this.flushScheduled = false;
      this.flush();
    });
  }

  close(): void {
    this.closed = true;
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.socket?.destroy();
  }

  private problem(text: string): void {
    // Log each distinct problem once per outage rather than on every retry.
    if (text !== this.lastProblem) {
      this.opts.logger.warn({ destination: this.destination }, text);
      this.lastProblem = text;
    }
  }

  private retry(): void {
    this.open = false;
    this.socket = undefined;
    if (this.closed) return;
    this.timer = setTimeout(() => void this.connect(), this.backoff);
    this.backoff = Math.min(this.backoff * 2, MAX_BACKOFF_MS);
  }

  private async connect(): Promise<void> {
    if (this.closed) return;
    let addr: Awaited<ReturnType<AddressLookup>>;
    try {
      addr = await this.opts.lookup(this.destination);
    } catch (err) {
      this.problem(`cannot look up destination "${this.destination}": ${String(err)}`);
      this.retry();
      return;
    }
    if (this.closed) return;
    if ("unavailable" in addr) {
      this.problem(addr.unavailable);
      this.retry();
      return;
    }
    const socket = net.connect({ host: addr.host, port: addr.port, noDelay: true });
    this.socket = socket;
    // "Blocked" belongs to a socket: one that died with a full buffer never drains, and must not hold up the next.
    this.blocked = false;
    const reader = new LinkFrameReader();
    socket.on("connect", () => {
      socket.write(
        encodeHello({
          sender: this.opts.self,
          receiver: this.destination,
          senderRegistrationId: this.opts.selfRegistrationId,
        }),
      );
    });
    socket.on("data", (chunk: Buffer) => {
      try {
        for (const f of reader.push(chunk)) {
          if (f.type === LinkFrameType.Welcome) {
            this.stream.ack(f.watermark);
            this.stream.rewind();
            this.open = true;
            this.backoff = MIN_BACKOFF_MS;
            this.stats.connects++;
            if (this.lastProblem !== "")
              this.opts.logger.info({ destination: this.destination }, "link up again");
            this.lastProblem = "";
            this.opts.logger.info(
              {
                destination: this.destination,
                resumeAfter: f.watermark.fork,
                pending: this.stream.pendingCount,
              },
              "link connected",
            );
            this.flush();
          } else if (f.type === LinkFrameType.Ack) {
            this.stats.acks++;
            this.ackReceived(f.watermark);
          } else if (f.type === LinkFrameType.Refuse) {
            this.problem(`"${this.destination}" refused the connection: ${f.reason}`);
            socket.destroy();
          } else {
            throw new FormatError(`unexpected link frame ${f.type} from a receiver`);
          }
        }
      } catch (err) {
        this.problem(`bad data from "${this.destination}", closing the link: ${String(err)}`);
        socket.destroy();
      }
    });
    socket.on("drain", () => {
      if (this.socket !== socket) return;
      this.blocked = false;
      this.flush();
    });
    socket.on("error", (err) => this.problem(`link to "${this.destination}" failed: ${err.message}`));
    socket.on("close", () => {
      if (this.socket === socket) this.retry();
    });
  }

  private ackReceived(wm: InputWatermark): void {
    this.stream.ack(wm);
    this.opts.onAck?.();
  }

  private flush(): void {
    const socket = this.socket;
    if (!this.open || socket === undefined || this.blocked) return;
    const max = this.opts.maxBatchBytes ?? 1 << 20;
    for (;;) {
      const entries = this.stream.unsent();
      if (entries.length === 0) return;
      // Split into frames of about `max` bytes so one huge backlog does not become one huge frame.
      let start = 0;
      while (start < entries.length) {
        let end = start;
        let bytes = 0;
        while (end < entries.length && (end === start || bytes + entries[end]!.frame.length <= max)) {
          bytes += entries[end]!.frame.length;
          end++;
        }
        const frame = encodeData(entries.slice(start, end));
        this.stats.sentEntries += end - start;
        this.stats.sentBytes += frame.length;
        start = end;
        if (!socket.write(frame)) this.blocked = true;
      }
      if (this.blocked) return;
    }
  }
}
