import net from "node:net";
import type { Logger } from "pino";
import { FormatError } from "./bin.js";
import { encodeDataPieces, encodeHello, LinkFrameReader, LinkFrameType } from "./link-protocol.js";
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
/** While backing off, how often the destination's published address is looked at again. */
const ADDRESS_POLL_MS = 20;
/** How long acknowledgements may be overdue before a connected link checks whether its destination moved. */
const MOVE_CHECK_MS = 100;

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
  /** While connected: notices that the destination moved (an active/active takeover) though this socket lives. */
  private watchdog: NodeJS.Timeout | undefined;
  private lastAckAt = 0;
  private flushScheduled = false;
  private blocked = false;
  private lastProblem = "";
  /** The address of the last connection attempt (`host:port`). */
  private tried: string | undefined;
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
    if (this.watchdog !== undefined) clearInterval(this.watchdog);
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
    if (this.watchdog !== undefined) clearInterval(this.watchdog);
    this.watchdog = undefined;
    this.open = false;
    this.socket = undefined;
    if (this.closed) return;
    const due = performance.now() + this.backoff;
    this.backoff = Math.min(this.backoff * 2, MAX_BACKOFF_MS);
    this.waitOrReresolve(due);
  }

  /**
   * Backs off until `due`, but reconnects at once if the destination publishes a different address
   * meanwhile: an active/active standby that took over is reached within a poll, not after the backoff.
   */
  private waitOrReresolve(due: number): void {
    const wait = Math.max(0, Math.min(ADDRESS_POLL_MS, due - performance.now()));
    this.timer = setTimeout(() => {
      if (this.closed) return;
      if (performance.now() >= due || this.tried === undefined) {
        void this.connect();
        return;
      }
      this.opts.lookup(this.destination).then(
        (a) => {
          if (this.closed) return;
          if (!("unavailable" in a) && `${a.host}:${a.port}` !== this.tried) void this.connect();
          else this.waitOrReresolve(due);
        },
        () => this.waitOrReresolve(due),
      );
    }, wait);
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
    this.tried = `${addr.host}:${addr.port}`;
    const socket = net.connect({ host: addr.host, port: addr.port, noDelay: true });
    this.socket = socket;
    // A previous socket that filled up (its receiver hung, or died) never drains: it must not block this one.
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
            this.watchMoves(socket);
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

  /**
   * A destination that hangs (stopped, partitioned) keeps its TCP connection open, and a standby that took its
   * place publishes a new address. While acknowledgements are overdue, look the address up again now and then,
   * and move to the new one when it changed.
   */
  private watchMoves(socket: net.Socket): void {
    if (this.watchdog !== undefined) clearInterval(this.watchdog);
    this.lastAckAt = performance.now();
    this.watchdog = setInterval(() => {
      if (this.socket !== socket || this.stream.pendingCount === 0) {
        this.lastAckAt = performance.now();
        return;
      }
      if (performance.now() - this.lastAckAt < MOVE_CHECK_MS) return;
      this.opts.lookup(this.destination).then(
        (a) => {
          if (this.socket !== socket || "unavailable" in a || `${a.host}:${a.port}` === this.tried) return;
          this.problem(`"${this.destination}" moved to ${a.host}:${a.port}; reconnecting there`);
          socket.destroy();
        },
        () => undefined,
      );
    }, MOVE_CHECK_MS);
    this.watchdog.unref();
  }

  private ackReceived(wm: InputWatermark): void {
    this.lastAckAt = performance.now();
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
        const { pieces, length } = encodeDataPieces(entries.slice(start, end));
        this.stats.sentEntries += end - start;
        this.stats.sentBytes += length;
        start = end;
        // Corked, the pieces leave as one writev; the last write's result says whether the socket is full.
        socket.cork();
        let ok = true;
        for (const p of pieces) ok = socket.write(p);
        socket.uncork();
        if (!ok) this.blocked = true;
      }
      if (this.blocked) return;
    }
  }
}
