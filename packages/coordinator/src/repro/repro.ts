import net from "node:net";
import type { MessageStreamEvent } from "@immortal/log";
import {
  CONTROL_SEQUENCE,
  encodeRecord,
  type Message,
  MessageType,
  type OutgoingRpc,
  RpcType,
} from "@immortal/wire";
import pino, { type Logger } from "pino";
import { FatalError } from "../cli/errors.js";
import {
  type CheckerStats,
  DeterminismChecker,
  type Divergence,
  reportDivergence,
} from "../determinism/index.js";
import { BindingProtocolError } from "../engine/core.js";
import { bindingEvents, sendCheckpoint } from "../engine/lb-stream.js";
import { listenExclusive } from "../engine/listen.js";
import { incomingFrame } from "../engine/outputs.js";
import { decodeIcState } from "../engine/state.js";
import { FileInstanceStorage } from "../storage/index.js";

/** The checkpoint asked for does not exist (AMBROSIA's fatal error 2, MissingCheckpoint). */
export class CheckpointNotFoundError extends FatalError {
  constructor(
    readonly checkpoint: number,
    readonly available: readonly number[],
    readonly dir: string,
  ) {
    super(
      available.length === 0
        ? `checkpoint ${checkpoint} does not exist: ${dir} holds no checkpoint (has the instance run with this log folder and version?)`
        : `checkpoint ${checkpoint} does not exist in ${dir}; the checkpoints there are ${available.join(", ")}`,
      2,
    );
  }
}

export interface ReproOptions {
  readonly instanceName: string;
  /** The log folder holding `<instance>_<version>/`. */
  readonly logDir: string;
  readonly currentVersion: number;
  /** Replay starts from this checkpoint, then logs N, N+1, … */
  readonly checkpoint: number;
  /** Ports the binding connects to (0 picks a free one; read them back from the instance). */
  readonly receivePort: number;
  readonly sendPort: number;
  /** Deliver records up to and including this sequence number, then stop delivering. */
  readonly stopAt?: number;
  /** Keep the binding's state at the stop point (its checkpoint bytes) in the result. */
  readonly captureState?: boolean;
  /**
   * Pace the replay one record at a time (a TakeCheckpoint round trip after each), so that every output is
   * attributed to exactly the record that produced it. Slow: a checkpoint per record.
   */
  readonly exact?: boolean;
  /** Compare regenerated outputs with the live run's digests (default on). */
  readonly checkDeterminism?: boolean;
  readonly onDivergence?: (d: Divergence) => void;
  readonly logger?: Logger;
  /** Lines for operators (`Ready`, `Connected!`); default: none. */
  readonly out?: (line: string) => void;
}

export interface ReproResult {
  readonly checkpoint: number;
  /** Sequence of the first record after the checkpoint. */
  readonly firstSequence: number;
  /** Last record delivered (−1 if none). */
  readonly lastSequence: number;
  readonly records: number;
  /** Set when delivery stopped at `stopAt` before the end of the log. */
  readonly stoppedAt?: number;
  /** A torn tail seen at the end of the newest log (reported, never repaired: this run is read-only). */
  readonly tail?: { readonly log: number; readonly reason: string; readonly detail: string };
  /** Forks the binding regenerated, per destination ("" = itself): counted, never sent. */
  readonly outputs: Readonly<Record<string, number>>;
  /** The binding's checkpoint bytes at the stop point (`captureState`). */
  readonly state?: Buffer;
  readonly determinism?: CheckerStats;
  readonly divergence?: Divergence;
}

/**
 * A repro (time-travel) run: AMBROSIA's DebugInstance. Listens on the binding's two ports like a coordinator,
 * sends checkpoint N and then the logged records after it in order, and never becomes primary: no
 * TakeBecomingPrimaryCheckpoint, no IC-to-IC port, no registry update, and nothing on disk is written or
 * truncated (a torn tail is only reported). The binding's outgoing RPCs are numbered as the live coordinator
 * numbered them, checked against the live run's digests, counted, and dropped. At the end (or at `stopAt`) it
 * asks the binding for a checkpoint: once that arrives every handler has run, so the outputs are complete and
 * the state is the state at that point.
 */
export class ReproCoordinator {
  private readonly servers: net.Server[] = [];
  private readonly sockets = new Set<net.Socket>();
  private pendingReceive: net.Socket | undefined;
  private pendingSend: net.Socket | undefined;
  private started = false;
  private stopped = false;
  private toBinding: net.Socket | undefined;
  private readonly storage: FileInstanceStorage;
  readonly logger: Logger;
  private readonly outputs = new Map<string, number>();
  private cursors = new Map<string, number>();
  private checker: DeterminismChecker | undefined;
  private divergence: Divergence | undefined;
  private lastDelivered = -1;
  private records = 0;
  private barrier:
    | { resolve: (state: Buffer | undefined) => void; chunks?: Buffer[]; started: boolean }
    | undefined;
  private resolveFinished!: (r: ReproResult) => void;
  private rejectFinished!: (err: Error) => void;
  /** Resolves when the replay is complete (or stopped at `stopAt`) and the binding has handled all of it. */
  readonly finished: Promise<ReproResult>;
  receivePort = 0;
  sendPort = 0;
  private bindingGone: Promise<void> | undefined;

  /** Resolves once the attached binding has disconnected (immediately if none attached yet). */
  get bindingClosed(): Promise<void> {
    return this.bindingGone ?? Promise.resolve();
  }

  private constructor(private readonly o: ReproOptions) {
    this.logger =
      o.logger ??
      pino(
        {
          base: { instance: o.instanceName, mode: "repro" },
          level: process.env.IMMORTAL_LOG_LEVEL ?? "info",
        },
        pino.destination(2),
      );
    this.storage = FileInstanceStorage.forInstance(o.logDir, o.instanceName, o.currentVersion);
    this.finished = new Promise((resolve, reject) => {
      this.resolveFinished = resolve;
      this.rejectFinished = reject;
    });
    // A caller that only awaits `stop()` must not see an unhandled rejection.
    this.finished.catch(() => undefined);
  }

  /** Checks that checkpoint N exists and verifies, then listens for the binding. */
  static async open(o: ReproOptions): Promise<ReproCoordinator> {
    const r = new ReproCoordinator(o);
    const available = await r.storage.listCheckpoints();
    if (!available.includes(o.checkpoint))
      throw new CheckpointNotFoundError(o.checkpoint, available, r.storage.dir);
    const reader = await r.storage.openCheckpoint(o.checkpoint);
    try {
      await reader.verify();
    } catch (err) {
      throw new FatalError(
        `checkpoint ${o.checkpoint} in ${r.storage.dir} is damaged: ${(err as Error).message}`,
      );
    } finally {
      await reader.close();
    }
    try {
      await r.listen();
    } catch (err) {
      await r.stop();
      throw err;
    }
    return r;
  }

  private async listen(): Promise<void> {
    for (const which of ["receive", "send"] as const) {
      const wanted = which === "receive" ? this.o.receivePort : this.o.sendPort;
      const server = net.createServer((s) => this.onSocket(which, s));
      try {
        await listenExclusive(server, wanted, "127.0.0.1");
      } catch (err) {
        throw new FatalError(`${which} port ${wanted} is not available: ${(err as Error).message}`);
      }
      this.servers.push(server);
      const port = (server.address() as net.AddressInfo).port;
      if (which === "receive") this.receivePort = port;
      else this.sendPort = port;
      // "localhost" may resolve to ::1 on Node 20; listen there too when the host has IPv6 loopback.
      const v6 = net.createServer((s) => this.onSocket(which, s));
      await listenExclusive(v6, port, "::1").then(
        () => this.servers.push(v6),
        () => undefined,
      );
    }
    this.logger.info(
      {
        checkpoint: this.o.checkpoint,
        stopAt: this.o.stopAt,
        receivePort: this.receivePort,
        sendPort: this.sendPort,
      },
      "repro run ready: read-only replay, never primary",
    );
    this.o.out?.("Ready");
  }

  private onSocket(which: "receive" | "send", s: net.Socket): void {
    s.setNoDelay(true);
    s.on("error", () => {});
    if (this.stopped || this.started) {
      this.logger.warn({ port: which }, "a binding is already attached; refusing another connection");
      s.destroy();
      return;
    }
    this.sockets.add(s);
    s.once("close", () => {
      this.sockets.delete(s);
      if (this.pendingReceive === s) this.pendingReceive = undefined;
      if (this.pendingSend === s) this.pendingSend = undefined;
    });
    if (which === "receive") {
      this.pendingReceive?.destroy();
      this.pendingReceive = s;
    } else {
      this.pendingSend?.destroy();
      this.pendingSend = s;
    }
    if (this.pendingReceive !== undefined && this.pendingSend !== undefined) {
      this.started = true;
      const from = this.pendingReceive;
      const to = this.pendingSend;
      this.o.out?.("Connected!");
      this.run(from, to).then(this.resolveFinished, (err: unknown) => {
        const e = err instanceof Error ? err : new Error(String(err));
        this.logger.error({ err: e.message }, "repro run failed");
        this.rejectFinished(e);
      });
    }
  }

  private async run(from: net.Socket, to: net.Socket): Promise<ReproResult> {
    this.toBinding = to;
    const closed = new Promise<never>((_, reject) => {
      const gone = () => reject(new Error("the binding disconnected before the replay finished"));
      from.once("close", gone);
      to.once("close", gone);
    });
    closed.catch(() => undefined);
    this.bindingGone = new Promise<void>((resolve) => {
      from.once("close", () => resolve());
      to.once("close", () => resolve());
    });
    const reading = this.readBinding(bindingEvents(from));
    // After the replay the binding may stay attached (a debugger session) or go; neither is an error then.
    reading.catch(() => undefined);
    return Promise.race([this.replay(), closed, reading]);
  }

  private async replay(): Promise<ReproResult> {
    const o = this.o;
    const reader = await this.storage.openCheckpoint(o.checkpoint);
    const ic = decodeIcState(reader.icState);
    if (o.stopAt !== undefined && o.stopAt < ic.nextSequence - 1) {
      await reader.close();
      throw new FatalError(
        `stop-at ${o.stopAt} is before checkpoint ${o.checkpoint}, which holds the state after record ` +
          `${ic.nextSequence - 1}: pick an earlier checkpoint (see the serverchkpt files in ${this.storage.dir})`,
      );
    }
    this.cursors = new Map([...ic.outputs].map(([name, s]) => [name, s.forkGenerated]));
    if (o.checkDeterminism !== false) {
      this.checker = await DeterminismChecker.load(this.storage.dir, o.checkpoint, this.cursors);
    }
    this.logger.info(
      {
        checkpoint: o.checkpoint,
        nextSequence: ic.nextSequence,
        recordedOutputs: this.checker?.stats.recordedOutputs,
      },
      "replaying",
    );
    await sendCheckpoint(reader, ic.committerId, (b) => this.write(b));

    const logs = (await this.storage.listLogs()).filter((n) => n >= o.checkpoint);
    let next = ic.nextSequence;
    let stoppedAt: number | undefined;
    let tail: ReproResult["tail"];
    outer: for (const n of logs) {
      // repair: false — a repro run never changes the log, even a torn tail the live coordinator would cut.
      const scan = this.storage.streamLog(n, {
        committerId: ic.committerId,
        expectedFirstSequence: next,
        isLastLog: n === logs[logs.length - 1],
        repair: false,
      });
      for await (const unit of scan) {
        if (o.stopAt !== undefined && unit.sequence > o.stopAt) {
          stoppedAt = o.stopAt;
          break outer;
        }
        await this.write(unit.dataRecord);
        this.lastDelivered = unit.sequence;
        this.records++;
        next = unit.sequence + 1;
        if (o.exact) await this.takeCheckpoint(ic.committerId, false);
      }
      const t = scan.result.tail;
      if (t !== undefined) {
        tail = { log: n, reason: t.reason, detail: t.detail };
        this.logger.warn(
          { log: n, at: t.truncatedAt, reason: t.reason },
          "torn log tail: replay ends before it (not repaired)",
        );
      }
    }
    if (o.stopAt !== undefined && stoppedAt === undefined && this.lastDelivered === o.stopAt)
      stoppedAt = o.stopAt;
    if (o.stopAt !== undefined && stoppedAt === undefined) {
      this.logger.warn(
        { stopAt: o.stopAt, lastSequence: this.lastDelivered },
        "the log ends before the stop-at sequence: replayed all of it",
      );
    }
    const state = await this.takeCheckpoint(ic.committerId, o.captureState === true);
    const complete = stoppedAt === undefined;
    const last = this.checker?.finish(complete && o.stopAt === undefined);
    if (last !== undefined) this.diverged(last);
    const result: ReproResult = {
      checkpoint: o.checkpoint,
      firstSequence: ic.nextSequence,
      lastSequence: this.lastDelivered,
      records: this.records,
      outputs: Object.fromEntries(this.outputs),
      ...(stoppedAt !== undefined ? { stoppedAt } : {}),
      ...(tail !== undefined ? { tail } : {}),
      ...(state !== undefined ? { state } : {}),
      ...(this.checker !== undefined ? { determinism: { ...this.checker.stats } } : {}),
      ...(this.divergence !== undefined ? { divergence: this.divergence } : {}),
    };
    this.logger.info(
      {
        records: this.records,
        lastSequence: this.lastDelivered,
        stoppedAt,
        outputs: result.outputs,
        determinism: result.determinism,
      },
      "repro replay finished",
    );
    return result;
  }

  /**
   * The barrier: a binding answers a TakeCheckpoint only after every earlier handler ran and its outputs were
   * sent. Resolves with the state bytes (`capture`) once the whole checkpoint has arrived.
   */
  private takeCheckpoint(committerId: number, capture: boolean): Promise<Buffer | undefined> {
    return new Promise<Buffer | undefined>((resolve) => {
      this.barrier = { resolve, started: false, ...(capture ? { chunks: [] } : {}) };
      this.toBinding!.write(
        encodeRecord({
          committerId,
          sequence: CONTROL_SEQUENCE,
          messages: [{ type: MessageType.TakeCheckpoint }],
        }),
      );
    });
  }

  private diverged(d: Divergence): void {
    this.divergence ??= d;
    reportDivergence(this.logger, this.o.instanceName, d);
    this.o.onDivergence?.(d);
  }

  private async readBinding(events: AsyncIterable<MessageStreamEvent>): Promise<never> {
    for await (const ev of events) {
      if (typeof ev.type === "number") this.onMessage(ev as Message);
      else if (ev.type === "checkpointChunk") this.barrier?.chunks?.push(Buffer.from(ev.bytes));
      else {
        const b = this.barrier;
        this.barrier = undefined;
        b?.resolve(b.chunks === undefined ? undefined : Buffer.concat(b.chunks));
      }
    }
    throw new Error("the binding closed its connection before the replay finished");
  }

  private onMessage(m: Message): void {
    switch (m.type) {
      case MessageType.RPC:
        this.route(m as OutgoingRpc);
        return;
      case MessageType.RPCBatch:
        for (const inner of m.messages) {
          if (inner.type !== MessageType.RPC)
            throw new BindingProtocolError(`a binding's RPCBatch may hold only RPCs, not type ${inner.type}`);
          this.route(inner as OutgoingRpc);
        }
        return;
      case MessageType.Checkpoint:
        if (this.barrier === undefined || this.barrier.started)
          throw new BindingProtocolError("unexpected Checkpoint: none was requested");
        this.barrier.started = true;
        return;
      case MessageType.TakeCheckpoint:
        this.logger.info("the binding asked for a checkpoint: ignored (a repro run writes nothing)");
        return;
      case MessageType.AttachTo:
      case MessageType.Ping:
      case MessageType.PingReturn:
        return;
      default:
        throw new BindingProtocolError(`message type ${m.type} may not be sent by a binding in a repro run`);
    }
  }

  /** An output the binding regenerated: numbered like the live coordinator numbers it, checked, counted, dropped. */
  private route(rpc: OutgoingRpc): void {
    if (rpc.rpcType === RpcType.Impulse) {
      throw new BindingProtocolError(
        "the binding sent an Impulse during a repro run (it never becomes primary)",
      );
    }
    const dest = rpc.destination === this.o.instanceName ? "" : rpc.destination;
    const fork = (this.cursors.get(dest) ?? 0) + 1;
    this.cursors.set(dest, fork);
    this.outputs.set(dest, (this.outputs.get(dest) ?? 0) + 1);
    const d = this.checker?.check(dest, fork, incomingFrame(rpc), this.lastDelivered, this.o.exact === true);
    if (d !== undefined) this.diverged(d);
  }

  private async write(bytes: Uint8Array): Promise<void> {
    const s = this.toBinding!;
    if (s.destroyed) throw new Error("the binding disconnected before the replay finished");
    if (!s.write(bytes)) {
      await new Promise<void>((resolve, reject) => {
        const done = () => {
          s.off("drain", done);
          s.off("close", done);
          if (s.destroyed) reject(new Error("the binding disconnected before the replay finished"));
          else resolve();
        };
        s.on("drain", done);
        s.on("close", done);
      });
    }
  }

  /** Counters (the same figures as the result, while it runs). */
  stats(): Record<string, unknown> {
    return {
      instance: this.o.instanceName,
      mode: "repro",
      checkpoint: this.o.checkpoint,
      records: this.records,
      lastSequence: this.lastDelivered,
      outputs: Object.fromEntries(this.outputs),
      determinism: this.checker?.stats,
    };
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    for (const s of this.sockets) s.destroy();
    await Promise.all(this.servers.map((srv) => new Promise<void>((r) => srv.close(() => r()))));
  }
}
