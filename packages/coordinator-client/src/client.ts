import type net from "node:net";
import {
  type LogRecord,
  MessageWriter,
  RecordDecoder,
  type RecordStreamEvent,
  writeBuffers,
  writeCheckpoint,
} from "@immortal/log";
import {
  type ControlType,
  encodeMessage,
  type IncomingRpc,
  MessageType,
  RpcType,
  WireError,
  writeZigZagInt,
  zigZagIntSize,
} from "@immortal/wire";
import { ChunkQueue } from "./chunk-queue.js";
import { ConnectCancelled, connectWithRetry } from "./connect.js";
import { decodeEnvelopeHeader, ENVELOPE_HEADER_SIZE, encodeEnvelopeHeader } from "./envelope.js";
import {
  CheckpointError,
  CheckpointFormatError,
  ClientClosedError,
  ConnectError,
  CoordinatorClientError,
  DisconnectedError,
  HandlerError,
  ImpulseDuringReplayError,
  ProtocolError,
  SequenceGapError,
} from "./errors.js";
import type {
  ChunkSource,
  ClientApp,
  ClientEvents,
  ClientState,
  CloseInfo,
  CoordinatorClientOptions,
  DispatchedMessage,
  DispatchInfo,
  SavedState,
} from "./types.js";

const MiB = 1024 * 1024;
const HEADER = BigInt(ENVELOPE_HEADER_SIZE);
/** How long a graceful `close()` waits for queued output to reach the coordinator before destroying. */
const CLOSE_GRACE_MS = 2000;
/** The destination of a self-call: no bytes. */
const NO_BYTES = new Uint8Array(0);

/** Why dispatch is suspended (at most one at a time: dispatch is strictly sequential). */
type Busy = "handler" | "load" | "save" | "control";

interface Loading {
  readonly queue: ChunkQueue;
  readonly appLength: bigint;
  readonly header: Buffer;
  headerHave: number;
  nextSequence: number;
  ended: boolean;
  loaderDone: boolean;
}

interface Waiter {
  resolve: () => void;
  reject: (err: unknown) => void;
}

const isCheckpointEvent = (ev: RecordStreamEvent): boolean =>
  ev.type === "checkpointChunk" || ev.type === "checkpointEnd";

/**
 * The binding's protocol engine: owns the two sockets to the coordinator, runs the start-up / recovery /
 * checkpoint sequences, dispatches log records to the app in order, and batches the app's outgoing RPCs.
 *
 * One instance serves one connection. After it closes (for any reason) the app's in-memory state must be
 * discarded: a new client recovers it from the coordinator's checkpoint and log.
 */
export class CoordinatorClient {
  private readonly app: ClientApp;
  private readonly host: string;
  private readonly receivePort: number;
  private readonly sendPort: number;
  private readonly instanceName: string | undefined;
  private readonly initialMessage: Uint8Array;
  private readonly connectTimeoutMs: number;
  private readonly retryMinMs: number;
  private readonly retryMaxMs: number;
  private readonly hwm: number;
  private readonly loadHwm: number;
  private readonly maxBatchBytes: number;
  private readonly maxRecordSize: number | undefined;
  private readonly verify: boolean;

  private _state: ClientState = "idle";
  private toIc: net.Socket | undefined;
  private fromIc: net.Socket | undefined;
  private readingPaused = false;
  private connectDeadline = 0;
  private connecting = false;
  private receivedAny = false;
  private sentAny = false;
  private socketError: Error | undefined;
  private endError: unknown;

  // ---- inbound: events wait here while dispatch is suspended
  private inbox: RecordStreamEvent[] = [];
  private qHead = 0;
  /** A record whose dispatch was suspended part-way (async handler, control message): where to resume. */
  private resumeAt: { record: LogRecord; msg: number; inner: number } | undefined;
  private busy: Busy | undefined;
  private pumping = false;
  private expected = 0;
  private checkpointLoaded = false;
  private whatIf = false;
  private loading: Loading | undefined;

  // ---- outbound
  private readonly writer = new MessageWriter();
  private batchCount = 0;
  private attachPending: Uint8Array[] = [];
  private attachBytes = 0;
  private out: Uint8Array[] = [];
  private outBytes = 0;
  private readonly attached = new Set<string>();
  private flushScheduled = false;
  /** Writes may go out: the start-up handshake is past (InitialMessage sent, or recovery begun). */
  private writable = false;
  private savingCheckpoint = false;
  private outputBlocked = false;
  private drainArmed = false;

  // ---- lifecycle
  private closing = false;
  private closeInfo: CloseInfo | undefined;
  private resolveClosed!: (info: CloseInfo) => void;
  /** Resolves (never rejects) once the client has stopped and both sockets are closed. */
  readonly closed: Promise<CloseInfo>;
  private primaryWaiters: Waiter[] = [];
  private drainWaiters: Waiter[] = [];
  private readonly listeners: { [E in keyof ClientEvents]: Set<(...args: ClientEvents[E]) => void> } = {
    state: new Set(),
    primary: new Set(),
    checkpoint: new Set(),
    close: new Set(),
  };

  constructor(private readonly options: CoordinatorClientOptions) {
    this.app = options.app;
    this.host = options.host ?? "127.0.0.1";
    this.receivePort = options.receivePort;
    this.sendPort = options.sendPort;
    this.instanceName = options.instanceName;
    this.initialMessage = options.initialMessage ?? new Uint8Array(0);
    this.connectTimeoutMs = options.connectTimeoutMs ?? 60_000;
    this.retryMinMs = options.connectRetryMs ?? 50;
    this.retryMaxMs = Math.max(this.retryMinMs, options.connectRetryMaxMs ?? 250);
    this.hwm = options.highWaterMark ?? 8 * MiB;
    this.loadHwm = options.loadHighWaterMark ?? 4 * MiB;
    this.maxBatchBytes = options.maxBatchBytes ?? 4 * MiB;
    this.maxRecordSize = options.maxRecordSize;
    this.verify = options.verifyCheckBytes !== false;
    this.closed = new Promise((resolve) => {
      this.resolveClosed = resolve;
    });
  }

  // =============================================================================================
  // Public surface

  get state(): ClientState {
    return this._state;
  }

  /** True until the instance is primary: handlers run on replayed input. */
  get replaying(): boolean {
    return this._state !== "primary";
  }

  /** A checkpoint is being written to the coordinator (dispatch is suspended meanwhile). */
  get checkpointing(): boolean {
    return this.savingCheckpoint;
  }

  /** The sequence ID the next logged record must carry. */
  get nextSequence(): number {
    return this.expected;
  }

  /**
   * Outgoing bytes not yet taken by the kernel: queued in the socket plus RPCs not yet flushed. Reading from
   * the coordinator stops while the socket's share is above the high-water mark.
   */
  get bufferedBytes(): number {
    return (this.toIc?.writableLength ?? 0) + this.outBytes + this.attachBytes + this.writer.byteLength;
  }

  /** Subscribes to an event; returns the function that unsubscribes. */
  on<E extends keyof ClientEvents>(event: E, listener: (...args: ClientEvents[E]) => void): () => void {
    const set = this.listeners[event] as Set<(...args: ClientEvents[E]) => void>;
    set.add(listener);
    return () => {
      set.delete(listener);
    };
  }

  /**
   * Connects to the receive port, then the send port, retrying until the connect timeout. Resolves once both
   * are open; the start-up sequence then runs on its own (`whenPrimary()` waits for its end).
   * Rejects with `ConnectError` (or `ClientClosedError` if `close()` was called meanwhile).
   */
  async start(): Promise<void> {
    if (this._state !== "idle") throw new ClientClosedError(`start() called in state ${this._state}`);
    this.connectDeadline = Date.now() + this.connectTimeoutMs;
    await this.connect();
  }

  /** Resolves once the instance is primary; rejects with the close error if it stops first. */
  whenPrimary(): Promise<void> {
    if (this._state === "primary") return Promise.resolve();
    if (this.closeInfo !== undefined) return Promise.reject(this.closedError("before becoming primary"));
    return new Promise((resolve, reject) => this.primaryWaiters.push({ resolve, reject }));
  }

  /** Resolves once the socket to the coordinator is below the high-water mark (at once if it is). */
  whenDrained(): Promise<void> {
    if (this.closeInfo !== undefined) return Promise.reject(this.closedError("while waiting for drain"));
    if (!this.outputBlocked) return Promise.resolve();
    return new Promise((resolve, reject) => this.drainWaiters.push({ resolve, reject }));
  }

  /**
   * Sends an RPC. `destination` "" (or this instance's own name) is a self-call. Every RPC sent in one tick
   * (synchronous run of code, e.g. all handlers of one socket read) goes out as one RPCBatch at the end of
   * the tick. The first RPC to each remote destination is preceded by one AttachTo. `args` is copied at once.
   *
   * Throws `ImpulseDuringReplayError` for an Impulse (rpcType 2) while not primary, `ClientClosedError` after
   * close, and the encoder's `WireError` for an invalid method ID or RPC type.
   */
  sendRpc(destination: string, methodId: number, rpcType: RpcType, args: Uint8Array): void {
    this.append(destination, methodId, rpcType, args);
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      queueMicrotask(this.tickFlush);
    }
  }

  /**
   * Like `sendRpc` but without the end-of-tick flush: the RPC waits for `flush()` (or for the next
   * `sendRpc`'s tick flush, or a checkpoint, which flushes everything first). For explicit batches.
   */
  queue(destination: string, methodId: number, rpcType: RpcType, args: Uint8Array): void {
    this.append(destination, methodId, rpcType, args);
  }

  /**
   * Writes every queued RPC now (as one RPCBatch, or a plain RPC if there is only one). While the protocol
   * forbids writing (before the start-up handshake, during a checkpoint) they stay queued and go out as soon
   * as it allows.
   */
  flush(): void {
    if (this.closeInfo !== undefined) throw this.closedError("flush() after close");
    this.flushNow();
    this.checkOutput();
  }

  /** Asks the coordinator to take a checkpoint now (it answers with TakeCheckpoint once it is primary). */
  requestCheckpoint(): void {
    if (this.closeInfo !== undefined || this.closing)
      throw this.closedError("requestCheckpoint() after close");
    this.sealBatch();
    this.pushOut(encodeMessage({ type: MessageType.TakeCheckpoint }));
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      queueMicrotask(this.tickFlush);
    }
  }

  /**
   * Stops: writes what is queued (unless a checkpoint is half-written), closes both sockets, resolves once
   * they are closed. Idempotent.
   */
  async close(): Promise<void> {
    if (this.closeInfo === undefined && !this.closing) {
      this.closing = true;
      // While connecting, the connect loop notices `closing` and finishes the client itself.
      if (!this.connecting) {
        if (!this.savingCheckpoint) this.flushNow();
        this.finish({ reason: "closed" });
      }
    }
    await this.closed;
  }

  // =============================================================================================
  // Connecting

  private async connect(): Promise<void> {
    this.connecting = true;
    let toIc: net.Socket | undefined;
    let which = "receive";
    let port = this.receivePort;
    try {
      this.setState("connecting");
      const common = {
        host: this.host,
        deadline: this.connectDeadline,
        retryMinMs: this.retryMinMs,
        retryMaxMs: this.retryMaxMs,
        cancelled: () => this.closing,
      };
      toIc = await connectWithRetry({ ...common, port: this.receivePort });
      which = "send";
      port = this.sendPort;
      const fromIc = await connectWithRetry({ ...common, port: this.sendPort });
      if (this.closing) {
        fromIc.destroy();
        throw new ConnectCancelled("closed while connecting");
      }
      this.attachSockets(toIc, fromIc);
      this.connecting = false;
      this.setState("starting");
    } catch (err) {
      this.connecting = false;
      if (this.toIc === undefined) toIc?.destroy();
      let e: CoordinatorClientError;
      if (err instanceof ConnectCancelled) e = new ClientClosedError("close() was called while connecting");
      else if (err instanceof CoordinatorClientError)
        e = err; // a state listener threw
      else {
        e = new ConnectError(
          `could not connect to the coordinator at ${this.host}: receive port ${this.receivePort} ` +
            `(binding → coordinator) then send port ${this.sendPort} (coordinator → binding), ` +
            `within ${this.connectTimeoutMs} ms; the ${which} port ${port} failed with: ${(err as Error).message}`,
          this.host,
          this.receivePort,
          this.sendPort,
          { cause: err },
        );
      }
      this.finish({ reason: this.closing ? "closed" : "error", error: e });
      throw e;
    }
  }

  private attachSockets(toIc: net.Socket, fromIc: net.Socket): void {
    this.toIc = toIc;
    this.fromIc = fromIc;
    this.readingPaused = false;
    this.receivedAny = false;
    this.sentAny = false;
    this.socketError = undefined;
    this.endError = undefined;
    const decoder = new RecordDecoder((ev) => this.onEvent(ev), {
      verify: this.verify,
      ...(this.maxRecordSize === undefined ? {} : { maxRecordSize: this.maxRecordSize }),
    });
    fromIc.on("data", (chunk: Buffer) => {
      if (this.fromIc === fromIc) this.onData(decoder, chunk);
    });
    fromIc.on("end", () => {
      try {
        decoder.end();
      } catch (err) {
        this.endError = err;
      }
    });
    // Nothing should come on the receive port; reading it anyway lets us see the coordinator close it.
    toIc.on("data", () => {});
    for (const [s, name] of [
      [toIc, "receive"],
      [fromIc, "send"],
    ] as const) {
      s.on("error", (err: Error) => {
        if (this.toIc === toIc) this.socketError ??= err;
      });
      s.on("close", () => {
        if (this.toIc === toIc) this.onSocketClose(name);
      });
    }
    // A coordinator that refuses us (another binding attached) may have closed a socket before these
    // listeners existed: its 'close' is gone, so look.
    const dead = toIc.destroyed ? "receive" : fromIc.destroyed ? "send" : undefined;
    if (dead !== undefined) {
      setImmediate(() => {
        if (this.toIc === toIc) this.onSocketClose(dead);
      });
    }
  }

  private onSocketClose(which: "receive" | "send"): void {
    if (this.closeInfo !== undefined || this.closing) return;
    if (
      this._state === "starting" &&
      !this.receivedAny &&
      !this.sentAny &&
      Date.now() < this.connectDeadline
    ) {
      // The coordinator accepted and dropped us before saying anything: it still had a previous binding
      // attached (it refuses a second one) or it restarted. Nothing was exchanged, so starting over is safe.
      const old = [this.toIc, this.fromIc];
      this.toIc = undefined;
      this.fromIc = undefined;
      for (const s of old) s?.destroy();
      // `connecting` from now on, so that a close() meanwhile is left to the connect loop.
      this.connecting = true;
      setTimeout(() => {
        if (this.closing) {
          this.connecting = false;
          this.finish({ reason: "closed" });
        } else if (this.closeInfo === undefined) {
          // Failures end in finish() inside connect(); nobody awaits this one.
          this.connect().catch(() => {});
        }
      }, this.retryMinMs);
      return;
    }
    const port = which === "receive" ? this.receivePort : this.sendPort;
    const cause = this.endError ?? this.socketError;
    let detail = cause instanceof Error ? `: ${cause.message}` : "";
    if (this._state === "starting" && !this.receivedAny) {
      detail +=
        " (before saying anything, for longer than the connect timeout: is another binding attached?)";
    }
    this.fail(
      new DisconnectedError(
        `the coordinator closed the ${which} connection (port ${port}) while the client was ${this._state}${detail}`,
        cause === undefined ? undefined : { cause },
      ),
    );
  }

  // =============================================================================================
  // Inbound: records → dispatch

  private onData(decoder: RecordDecoder, chunk: Buffer): void {
    if (this.closeInfo !== undefined) return;
    this.receivedAny = true;
    try {
      decoder.push(chunk);
    } catch (err) {
      // Handler and protocol errors never escape onEvent, so this is malformed input.
      this.fail(err);
      return;
    }
    this.updateReading();
  }

  private onEvent(ev: RecordStreamEvent): void {
    if (this.closeInfo !== undefined) return;
    const queueEmpty = this.qHead === this.inbox.length;
    // While a checkpoint loads, its own bytes go straight to the loader (the record that announced it waits
    // in `resumeAt`); everything else waits for dispatch to resume.
    const direct =
      !this.pumping &&
      queueEmpty &&
      (this.busy === "load"
        ? isCheckpointEvent(ev)
        : this.busy === undefined && this.resumeAt === undefined && !this.outputBlocked);
    if (!direct) {
      this.inbox.push(ev);
      return;
    }
    try {
      this.handleEvent(ev);
    } catch (err) {
      this.fail(err);
    }
  }

  /** Processes queued events until dispatch is suspended again or the queue is empty. */
  private pump(): void {
    if (this.pumping || this.closeInfo !== undefined) return;
    this.pumping = true;
    try {
      while (this.closeInfo === undefined) {
        if (this.busy !== undefined) {
          // Only a checkpoint being loaded still takes its own bytes.
          const head = this.inbox[this.qHead];
          if (this.busy !== "load" || head === undefined || !isCheckpointEvent(head)) break;
          this.handleEvent(this.shift());
          continue;
        }
        if (this.outputBlocked) break;
        const r = this.resumeAt;
        if (r !== undefined) {
          this.resumeAt = undefined;
          this.runRecord(r.record, r.msg, r.inner);
          continue;
        }
        if (this.qHead === this.inbox.length) break;
        this.handleEvent(this.shift());
      }
    } catch (err) {
      this.fail(err);
    } finally {
      this.pumping = false;
    }
    this.updateReading();
  }

  private shift(): RecordStreamEvent {
    const ev = this.inbox[this.qHead++]!;
    if (this.qHead === this.inbox.length) {
      this.inbox = [];
      this.qHead = 0;
    }
    return ev;
  }

  /**
   * Pauses the send-port socket whenever events would only pile up: dispatch suspended (async handler,
   * checkpoint being saved, upgrade), the loader behind on checkpoint bytes, or the output over its mark.
   * The queue then holds at most the events of one socket chunk.
   */
  private updateReading(): void {
    const s = this.fromIc;
    if (s === undefined || this.closeInfo !== undefined) return;
    const queueEmpty = this.qHead === this.inbox.length;
    let want: boolean;
    if (this.busy === "load") {
      // Loading is not dispatch: it needs only the loader to keep up.
      const l = this.loading;
      want = queueEmpty && l !== undefined && !l.ended && l.queue.buffered < this.loadHwm;
    } else if (this.busy !== undefined || this.outputBlocked) want = false;
    else want = queueEmpty && this.resumeAt === undefined;
    if (want === this.readingPaused) {
      this.readingPaused = !want;
      if (want) s.resume();
      else s.pause();
    }
  }

  private handleEvent(ev: RecordStreamEvent): void {
    switch (ev.type) {
      case "record":
        this.runRecord(ev, 0, 0);
        return;
      case "checkpointChunk":
        this.feedCheckpoint(ev.bytes);
        return;
      case "checkpointEnd":
        this.endCheckpoint();
        return;
    }
  }

  /** Dispatches a record's messages from (`startMsg`, `startInner`); stops early if dispatch gets suspended. */
  private runRecord(record: LogRecord, startMsg: number, startInner: number): void {
    const seq = record.header.sequence;
    const logged = seq >= 0;
    if (logged && startMsg === 0 && startInner === 0) {
      if (this._state === "starting") {
        throw new ProtocolError(
          `log record ${seq} arrived before the start-up sequence (no checkpoint and no TakeBecomingPrimaryCheckpoint yet)`,
        );
      }
      if (seq !== this.expected) throw new SequenceGapError(this.expected, seq);
    }
    const info: DispatchInfo = { replaying: this._state !== "primary", sequence: seq };
    const msgs = record.messages;
    for (let i = startMsg; i < msgs.length; i++) {
      const m = msgs[i]!;
      switch (m.type) {
        case MessageType.RPC:
        case MessageType.InitialMessage:
          if (!logged) throw this.outOfLog(m.type, seq);
          if (this.invoke(m as DispatchedMessage, info)) {
            this.resumeAt = { record, msg: i + 1, inner: 0 };
            return;
          }
          if (this.closeInfo !== undefined) return;
          break;
        case MessageType.RPCBatch:
        case MessageType.CountReplayableRPCBatch: {
          if (!logged) throw this.outOfLog(m.type, seq);
          const inner = m.messages;
          for (let j = i === startMsg ? startInner : 0; j < inner.length; j++) {
            const im = inner[j]!;
            // Ping/PingReturn inside a batch are coordinators' latency probes, not for the app.
            if (im.type !== MessageType.RPC) continue;
            if (this.invoke(im as IncomingRpc, info)) {
              this.resumeAt = { record, msg: i, inner: j + 1 };
              return;
            }
            if (this.closeInfo !== undefined) return;
          }
          break;
        }
        case MessageType.Ping:
        case MessageType.PingReturn:
          break;
        case MessageType.Checkpoint:
          if (logged) throw new ProtocolError(`log record ${seq} carries a Checkpoint message`);
          this.startLoad(m.length);
          if (this.busy !== undefined) {
            this.resumeAt = { record, msg: i + 1, inner: 0 };
            return;
          }
          break;
        case MessageType.TakeCheckpoint:
        case MessageType.UpgradeTakeCheckpoint:
        case MessageType.TakeBecomingPrimaryCheckpoint:
        case MessageType.UpgradeService:
        case MessageType.BecomingPrimary:
          if (logged) throw new ProtocolError(`log record ${seq} carries control message ${m.type}`);
          this.control(m.type);
          if (this.busy !== undefined) {
            this.resumeAt = { record, msg: i + 1, inner: 0 };
            return;
          }
          break;
        default:
          throw new ProtocolError(`message type ${m.type} may not be sent to a binding (record ${seq})`);
      }
    }
    if (logged) {
      this.expected = seq + 1;
      // Cheap per-record check so that one socket read's worth of handlers cannot overfill the output.
      if (this.bufferedBytes > this.hwm) this.checkOutput();
    }
  }

  private outOfLog(type: number, seq: number): ProtocolError {
    return new ProtocolError(`message type ${type} in record ${seq}, which is outside the log order`);
  }

  /** Calls the app's handler; returns true if it went async (dispatch is then suspended until it settles). */
  private invoke(m: DispatchedMessage, info: DispatchInfo): boolean {
    let r: void | PromiseLike<void>;
    try {
      r = this.app.onMessage(m, info);
    } catch (err) {
      throw this.handlerError(err, m, info);
    }
    if (r === undefined || r === null || typeof (r as PromiseLike<void>).then !== "function") return false;
    this.busy = "handler";
    (r as PromiseLike<void>).then(
      () => {
        if (this.busy === "handler") this.busy = undefined;
        this.pump();
      },
      (err: unknown) => this.fail(this.handlerError(err, m, info)),
    );
    return true;
  }

  private handlerError(err: unknown, m: DispatchedMessage, info: DispatchInfo): CoordinatorClientError {
    // Our own errors (an uncaught ImpulseDuringReplayError, say) say more than a wrapper would.
    if (err instanceof CoordinatorClientError) return err;
    const what = m.type === MessageType.RPC ? `method ${m.methodId}` : "the InitialMessage";
    return new HandlerError(
      `onMessage failed on ${what} of log record ${info.sequence}: ${err instanceof Error ? err.message : String(err)}`,
      { cause: err },
    );
  }

  // =============================================================================================
  // Control messages and checkpoints

  private control(type: ControlType): void {
    const state = this._state;
    const refuse = (why: string): never => {
      throw new ProtocolError(`control message ${type} ${why} (client ${state})`);
    };
    switch (type) {
      case MessageType.TakeCheckpoint:
        if (state === "starting") refuse("arrived before the start-up sequence");
        this.runAsync("save", () => this.saveCheckpoint());
        return;
      case MessageType.TakeBecomingPrimaryCheckpoint: {
        if (state === "primary")
          refuse("(TakeBecomingPrimaryCheckpoint) arrived but the client is already primary");
        if (this.whatIf)
          refuse("(TakeBecomingPrimaryCheckpoint) arrived in a what-if run, which never becomes primary");
        // Without a checkpoint loaded this is a first start: the InitialMessage goes first.
        const first = !this.checkpointLoaded;
        this.runAsync("save", async () => {
          if (first) {
            this.writable = true;
            this.toIc!.write(encodeMessage({ type: MessageType.InitialMessage, data: this.initialMessage }));
            this.sentAny = true;
          }
          await this.saveCheckpoint();
          this.becomePrimary();
        });
        return;
      }
      case MessageType.UpgradeTakeCheckpoint:
        if (state === "primary" || this.whatIf || !this.checkpointLoaded)
          refuse("(UpgradeTakeCheckpoint) is out of order");
        this.runAsync("control", async () => {
          await this.callUpgrade(false);
          await this.saveCheckpoint();
          this.becomePrimary();
        });
        return;
      case MessageType.UpgradeService:
        if (state !== "recovering" || this.whatIf || !this.checkpointLoaded)
          refuse("(UpgradeService) is out of order");
        this.runAsync("control", async () => {
          await this.callUpgrade(true);
          this.whatIf = true;
          this.setState("replaying-whatif");
        });
        return;
      case MessageType.BecomingPrimary:
        if (state === "primary" || this.whatIf || !this.checkpointLoaded)
          refuse("(BecomingPrimary) is out of order");
        // An active/active standby already has the state the coordinator checkpointed: no checkpoint.
        this.becomePrimary();
        return;
    }
  }

  private runAsync(kind: Busy, fn: () => Promise<void>): void {
    this.busy = kind;
    fn().then(
      () => {
        if (this.busy === kind) this.busy = undefined;
        this.pump();
      },
      (err: unknown) => this.fail(err),
    );
  }

  private async callUpgrade(whatIf: boolean): Promise<void> {
    const hook = this.app.upgrade;
    if (hook === undefined) {
      throw new ProtocolError(
        `the coordinator asked for ${whatIf ? "a what-if upgrade test (UpgradeService)" : "a live upgrade (UpgradeTakeCheckpoint)"} but the app has no upgrade hook`,
      );
    }
    try {
      await hook.call(this.app, { whatIf });
    } catch (err) {
      if (err instanceof CoordinatorClientError) throw err;
      throw new HandlerError(`the upgrade hook failed: ${(err as Error)?.message ?? String(err)}`, {
        cause: err,
      });
    }
  }

  private becomePrimary(): void {
    this.setState("primary");
    const waiters = this.primaryWaiters;
    this.primaryWaiters = [];
    for (const w of waiters) w.resolve();
    this.emit("primary");
    this.callOption(() => this.options.onPrimary?.());
    this.flushNow();
  }

  /**
   * Writes a checkpoint: everything the handlers sent so far first (the coordinator snapshots its own state
   * when the Checkpoint message arrives), then the Checkpoint frame, the envelope header and the app's bytes,
   * with back-pressure. Outgoing RPCs sent meanwhile wait: nothing may interleave with the raw bytes.
   */
  private async saveCheckpoint(): Promise<void> {
    this.flushNow();
    this.savingCheckpoint = true;
    let length: bigint;
    const nextSequence = this.expected;
    try {
      let saved: SavedState;
      try {
        saved = await this.app.saveState();
      } catch (err) {
        if (err instanceof CoordinatorClientError) throw err;
        throw new CheckpointError("save", `saveState failed: ${(err as Error)?.message ?? String(err)}`, {
          cause: err,
        });
      }
      const snap = await normalizeSnapshot(saved);
      length = snap.length;
      const toIc = this.toIc;
      if (toIc === undefined || this.closeInfo !== undefined) throw this.closedError("while checkpointing");
      try {
        await writeCheckpoint(
          toIc,
          HEADER + length,
          withHeader(encodeEnvelopeHeader(nextSequence), snap.chunks),
        );
      } catch (err) {
        if (this.closeInfo !== undefined) throw this.closedError("while checkpointing");
        throw new CheckpointError("save", `writing the checkpoint failed: ${(err as Error).message}`, {
          cause: err,
        });
      }
      this.sentAny = true;
    } finally {
      this.savingCheckpoint = false;
    }
    this.emit("checkpoint", { direction: "saved", length, nextSequence });
    this.onOutputProgress();
  }

  private startLoad(length: bigint): void {
    if (this._state !== "starting" || this.checkpointLoaded || this.loading !== undefined) {
      throw new ProtocolError(`unexpected Checkpoint from the coordinator (client ${this._state})`);
    }
    this.writable = true;
    this.setState("recovering");
    if (length < HEADER) {
      throw new CheckpointFormatError(
        `checkpoint of ${length} bytes is shorter than the client's ${ENVELOPE_HEADER_SIZE}-byte envelope`,
      );
    }
    const appLength = length - HEADER;
    const queue = new ChunkQueue(() => this.updateReading());
    const load: Loading = {
      queue,
      appLength,
      header: Buffer.alloc(ENVELOPE_HEADER_SIZE),
      headerHave: 0,
      nextSequence: -1,
      ended: false,
      loaderDone: false,
    };
    this.loading = load;
    this.busy = "load";
    let p: PromiseLike<void>;
    try {
      p = Promise.resolve(this.app.loadState(queue, appLength));
    } catch (err) {
      p = Promise.reject(err);
    }
    p.then(
      () => {
        load.loaderDone = true;
        if (!load.ended && load.queue.consumed < appLength) {
          // More bytes are coming but nobody will read them.
          this.fail(
            new CheckpointError(
              "load",
              `loadState returned after reading ${load.queue.consumed} of ${appLength} bytes`,
            ),
          );
          return;
        }
        this.finishLoad();
      },
      (err: unknown) => {
        if (this.closeInfo !== undefined) return;
        this.fail(
          err instanceof CoordinatorClientError
            ? err
            : new CheckpointError("load", `loadState failed: ${(err as Error)?.message ?? String(err)}`, {
                cause: err,
              }),
        );
      },
    );
  }

  private feedCheckpoint(bytes: Uint8Array): void {
    const load = this.loading!;
    let b = bytes;
    if (load.headerHave < ENVELOPE_HEADER_SIZE) {
      const n = Math.min(ENVELOPE_HEADER_SIZE - load.headerHave, b.length);
      load.header.set(b.subarray(0, n), load.headerHave);
      load.headerHave += n;
      b = b.subarray(n);
      if (load.headerHave === ENVELOPE_HEADER_SIZE) {
        try {
          load.nextSequence = decodeEnvelopeHeader(load.header).nextSequence;
        } catch (err) {
          load.queue.fail(err);
          throw err;
        }
      }
    }
    if (b.length > 0) load.queue.push(b);
  }

  private endCheckpoint(): void {
    const load = this.loading!;
    load.ended = true;
    load.queue.end();
    this.finishLoad();
  }

  private finishLoad(): void {
    const load = this.loading;
    if (load === undefined || !load.ended || !load.loaderDone || this.closeInfo !== undefined) return;
    if (load.queue.consumed !== load.appLength) {
      this.fail(
        new CheckpointError(
          "load",
          `loadState returned after reading ${load.queue.consumed} of ${load.appLength} bytes`,
        ),
      );
      return;
    }
    this.loading = undefined;
    this.checkpointLoaded = true;
    this.expected = load.nextSequence;
    if (this.busy === "load") this.busy = undefined;
    try {
      this.emit("checkpoint", {
        direction: "loaded",
        length: load.appLength,
        nextSequence: load.nextSequence,
      });
    } catch (err) {
      this.fail(err);
      return;
    }
    this.pump();
  }

  // =============================================================================================
  // Outbound

  private append(destination: string, methodId: number, rpcType: RpcType, args: Uint8Array): void {
    if (this.closeInfo !== undefined || this.closing) throw this.closedError("sendRpc() after close");
    if (rpcType === RpcType.Impulse && this._state !== "primary") {
      throw new ImpulseDuringReplayError(
        `an Impulse (method ${methodId}) was sent while the client is ${this._state}: impulses may be sent only ` +
          "once the instance is primary, and never from replayed handlers",
      );
    }
    const self = destination === "" || destination === this.instanceName;
    this.writer.addRpc(self ? NO_BYTES : this.destinationBytes(destination), methodId, rpcType, args);
    this.batchCount++;
    if (!self && !this.attached.has(destination)) {
      this.attached.add(destination);
      // Written before the open batch when it is sealed, so before this destination's first RPC.
      const a = encodeMessage({ type: MessageType.AttachTo, destination });
      this.attachPending.push(a);
      this.attachBytes += a.length;
    }
    if (this.writer.byteLength >= this.maxBatchBytes) this.sealBatch();
  }

  /** UTF-8 bytes of the destinations sent to (most apps name a few), encoded once each, not per RPC. */
  private readonly destinations = new Map<string, Uint8Array>();

  private destinationBytes(name: string): Uint8Array {
    let b = this.destinations.get(name);
    if (b === undefined) {
      // Bounded: an app that sends to ever new names re-encodes them rather than keeping them all.
      if (this.destinations.size >= 1024) this.destinations.clear();
      b = Buffer.from(name, "utf8");
      this.destinations.set(name, b);
    }
    return b;
  }

  private readonly tickFlush = (): void => {
    this.flushScheduled = false;
    if (this.closeInfo !== undefined) return;
    this.flushNow();
    this.checkOutput();
  };

  private pushOut(b: Uint8Array): void {
    this.out.push(b);
    this.outBytes += b.length;
  }

  /** Closes the open batch: pending AttachTos, then one RPC as is or several as one RPCBatch frame. */
  private sealBatch(): void {
    if (this.attachPending.length > 0) {
      for (const a of this.attachPending) this.pushOut(a);
      this.attachPending = [];
      this.attachBytes = 0;
    }
    const n = this.batchCount;
    if (n === 0) return;
    this.batchCount = 0;
    const payload = this.writer.take();
    if (n > 1) {
      // The RPCs are already encoded back to back; only the batch's frame header is written here (no copy).
      const body = 1 + zigZagIntSize(n) + payload.length;
      const head = Buffer.allocUnsafe(zigZagIntSize(body) + 1 + zigZagIntSize(n));
      let p = writeZigZagInt(head, 0, body);
      head[p++] = MessageType.RPCBatch;
      writeZigZagInt(head, p, n);
      this.pushOut(head);
    }
    this.pushOut(payload);
  }

  private canWrite(): boolean {
    return this.writable && !this.savingCheckpoint && this.closeInfo === undefined && this.toIc !== undefined;
  }

  /** Writes everything queued if the protocol allows it now (one corked writev). */
  private flushNow(): void {
    if (!this.canWrite()) return;
    this.sealBatch();
    if (this.out.length === 0) return;
    const bufs = this.out;
    this.out = [];
    this.outBytes = 0;
    writeBuffers(this.toIc!, bufs);
    this.sentAny = true;
  }

  /** Blocks reading (and so dispatch) while the socket to the coordinator holds more than the mark. */
  private checkOutput(): void {
    if (this.outputBlocked || this.bufferedBytes <= this.hwm) return;
    this.flushNow();
    const s = this.toIc;
    // Bytes held back by the protocol (during a checkpoint) are released by its progress, which needs reading.
    if (s === undefined || s.writableLength <= this.hwm) return;
    this.outputBlocked = true;
    this.armDrain();
    this.updateReading();
  }

  private armDrain(): void {
    const s = this.toIc;
    if (this.drainArmed || s === undefined || !s.writableNeedDrain) return;
    this.drainArmed = true;
    s.once("drain", () => {
      this.drainArmed = false;
      if (this.toIc === s) this.onOutputProgress();
    });
  }

  private onOutputProgress(): void {
    if (this.closeInfo !== undefined) return;
    this.flushNow();
    if (!this.outputBlocked) return;
    if ((this.toIc?.writableLength ?? 0) > this.hwm) {
      this.armDrain();
      return;
    }
    this.outputBlocked = false;
    const waiters = this.drainWaiters;
    this.drainWaiters = [];
    for (const w of waiters) w.resolve();
    this.pump();
  }

  // =============================================================================================
  // State, events, lifecycle

  private setState(s: ClientState): void {
    const prev = this._state;
    if (prev === s) return;
    this._state = s;
    this.emit("state", s, prev);
    this.callOption(() => this.options.onStateChange?.(s, prev));
  }

  /** Calls listeners; one that throws is an app error on the protocol path: rethrown as a `HandlerError`. */
  private emit<E extends keyof ClientEvents>(event: E, ...args: ClientEvents[E]): void {
    const set = this.listeners[event] as Set<(...a: ClientEvents[E]) => void>;
    if (set.size === 0) return;
    for (const l of [...set]) {
      try {
        l(...args);
      } catch (err) {
        if (err instanceof CoordinatorClientError) throw err;
        throw new HandlerError(`a "${event}" listener threw: ${(err as Error)?.message ?? String(err)}`, {
          cause: err,
        });
      }
    }
  }

  private callOption(fn: () => void): void {
    try {
      fn();
    } catch (err) {
      if (err instanceof CoordinatorClientError) throw err;
      throw new HandlerError(`an option callback threw: ${(err as Error)?.message ?? String(err)}`, {
        cause: err,
      });
    }
  }

  private closedError(when: string): CoordinatorClientError {
    const info = this.closeInfo;
    if (info?.error !== undefined) return info.error;
    return new ClientClosedError(`the client is closed (${when})`);
  }

  private fail(err: unknown): void {
    if (this.closeInfo !== undefined) return;
    let e: CoordinatorClientError;
    if (err instanceof CoordinatorClientError) e = err;
    else if (err instanceof WireError) {
      e = new ProtocolError(`malformed input from the coordinator: ${err.message}`, { cause: err });
    } else {
      e = new ProtocolError(`unexpected failure: ${(err as Error)?.message ?? String(err)}`, { cause: err });
    }
    this.finish({ reason: e instanceof DisconnectedError ? "disconnected" : "error", error: e });
  }

  /** Stops everything once; `closed` resolves after both sockets have closed. */
  private finish(info: CloseInfo): void {
    if (this.closeInfo !== undefined) return;
    this.closeInfo = info;
    const prev = this._state;
    this._state = "closed";
    const err = info.error ?? new ClientClosedError("the client was closed");
    this.loading?.queue.fail(err);
    this.inbox = [];
    this.qHead = 0;
    this.resumeAt = undefined;
    for (const w of this.primaryWaiters.splice(0)) w.reject(err);
    for (const w of this.drainWaiters.splice(0)) w.reject(err);

    const sockets = [this.toIc, this.fromIc].filter((s): s is net.Socket => s !== undefined);
    const gone = sockets.map(
      (s) => new Promise<void>((resolve) => (s.closed ? resolve() : s.once("close", () => resolve()))),
    );
    if (info.reason === "closed" && this.toIc !== undefined && !this.savingCheckpoint) {
      // Graceful: let queued RPCs reach the coordinator, but do not wait forever on one that stopped reading.
      const toIc = this.toIc;
      toIc.end();
      const t = setTimeout(() => toIc.destroy(), CLOSE_GRACE_MS);
      t.unref();
      this.fromIc?.destroy();
    } else {
      for (const s of sockets) s.destroy();
    }
    void Promise.all(gone).then(() => {
      this.rethrowingAsync(() => {
        this.emit("state", "closed", prev);
        this.options.onStateChange?.("closed", prev);
      });
      this.rethrowingAsync(() => this.emit("close", info));
      this.resolveClosed(info);
    });
  }

  /** The client is already stopped: a listener error can only be reported, as an uncaught exception. */
  private rethrowingAsync(fn: () => void): void {
    try {
      fn();
    } catch (err) {
      queueMicrotask(() => {
        throw err;
      });
    }
  }
}

async function normalizeSnapshot(saved: SavedState): Promise<{ length: bigint; chunks: ChunkSource }> {
  if (saved instanceof Uint8Array) return { length: BigInt(saved.length), chunks: [saved] };
  if (saved === null || typeof saved !== "object" || !("chunks" in saved)) {
    throw new CheckpointError("save", "saveState must return a Uint8Array or { length?, chunks }");
  }
  if (saved.length !== undefined) {
    if (typeof saved.length !== "bigint" || saved.length < 0n) {
      throw new CheckpointError("save", `saveState returned an invalid length ${String(saved.length)}`);
    }
    return { length: saved.length, chunks: saved.chunks };
  }
  // Unknown length: the only way to announce it up front is to hold the whole state. Documented as such.
  const held: Uint8Array[] = [];
  let n = 0n;
  for await (const c of saved.chunks) {
    held.push(c);
    n += BigInt(c.length);
  }
  return { length: n, chunks: held };
}

async function* withHeader(header: Uint8Array, chunks: ChunkSource): AsyncGenerator<Uint8Array> {
  yield header;
  yield* chunks;
}
