import { randomInt } from "node:crypto";
import type net from "node:net";
import type { ForwardingStreamEvent, RawBatch } from "@immortal/log";
import {
  CONTROL_SEQUENCE,
  copyAsIncoming,
  encodeMessage,
  encodeRecord,
  forEachBatchItem,
  type Message,
  MessageType,
  type OutgoingRpc,
  RpcType,
  rewriteAsIncoming,
  rpcSpan,
  scanRpcFrame,
} from "@immortal/wire";
import type { Logger } from "pino";
import type { DeterminismHooks } from "../determinism/index.js";
import { followLog } from "../replication/follower.js";
import { awaitRole, type ReplicaHooks } from "../replication/replica.js";
import type { CheckpointWriter, InstanceStorage, LogWriter, ScannedUnit } from "../storage/index.js";
import { Committer } from "./committer.js";
import { sendCheckpoint } from "./lb-stream.js";
import { type AddressLookup, OutboundLink } from "./links.js";
import { DestinationNames, ImpulseDuringReplayError, incomingFrame, OutputStream } from "./outputs.js";
import {
  decodeIcState,
  decodeMeta,
  encodeIcState,
  type IcState,
  type InputWatermark,
  KIND_FORK,
  KIND_IMPULSE,
  type OutEntry,
} from "./state.js";
import type { UpgradeTarget } from "./upgrade.js";

/** A binding's RPC frames smaller than this are forwarded as views of its batch, larger ones as copies. */
const FORWARD_IN_PLACE_BYTES = 2048;

/** The binding broke the protocol; its connection is closed with this reason. */
export class BindingProtocolError extends Error {
  override readonly name = "BindingProtocolError";
}

export interface CoreOptions {
  instanceName: string;
  registrationId: string;
  storage: InstanceStorage;
  logger: Logger;
  /** This incarnation of the coordinator (bumped durably at every start). */
  epoch: number;
  /** Log size that triggers a checkpoint, in bytes (0 = never). */
  logTriggerBytes: number;
  /** How many checkpoints (with their logs) to keep; older ones are deleted. */
  keepCheckpoints: number;
  /**
   * Unacknowledged outgoing bytes (all destinations) above which the binding is no longer read: TCP then
   * pushes back on the binding, so a destination that is down cannot make this process grow without bound.
   * Reading resumes below half of it.
   */
  maxOutputBytes: number;
  /**
   * Bytes queued on the socket to the binding above which nothing more is committed, and inbound links are
   * paused (`onInboundPaused`), until the binding reads again: a binding that stops reading must not make
   * this process buffer every peer's traffic.
   */
  maxBindingBufferBytes: number;
  onInboundPaused?: (paused: boolean) => void;
  lookup: AddressLookup;
  /** Binding → IC (the IC's receive port) as decoded events, and IC → binding (the send port). */
  events: AsyncIterable<ForwardingStreamEvent>;
  toBinding: net.Socket;
  /** Called once when this core stops, with the reason (undefined for an orderly stop). */
  onStopped?: (reason: unknown) => void;
  /** Printed when the instance becomes primary and starts normal processing. */
  onPrimary?: () => void;
  /** A live upgrade: recover from `storage`, then UpgradeTakeCheckpoint into the target's folder (./upgrade.ts). */
  upgrade?: UpgradeTarget;
  /** Records outgoing forks while live and checks them during the recovery replay (src/determinism). */
  determinism?: DeterminismHooks;
  /** Active/active: the lease and a standby's role (replication/). Absent for a single-replica instance. */
  replica?: ReplicaHooks;
}

type Phase = "starting" | "replaying" | "primary" | "stopped";

/**
 * One attached binding's life with this instance: the start-up or recovery sequence, then normal processing.
 * A new binding connection always gets a new core that recovers from disk, so "the binding died" and "the
 * whole IC died" are recovered by the same, tested, path.
 */
export class InstanceCore {
  private phase: Phase = "starting";
  private committer!: Committer;
  private logWriter: LogWriter | undefined;
  private logNumber = 0;
  private readonly streams = new Map<string, OutputStream>();
  private readonly links = new Map<string, OutboundLink>();
  private readonly inboundAcks = new Map<string, (wm: InputWatermark) => void>();
  private selfDeliveryScheduled = false;
  private checkpointing = false;
  private heldRecords: Array<readonly Uint8Array[]> | undefined;
  private spaceWaiter: (() => void) | undefined;
  /**
   * The binding's view: it becomes primary (and may send Impulses) as soon as it has sent the checkpoint that
   * answers TakeBecomingPrimaryCheckpoint, which can be before this core has finished publishing that checkpoint.
   */
  private bindingPrimary = false;
  private becomingPrimaryCheckpoint = false;
  readonly counters = {
    checkpoints: 0,
    lastCheckpointBytes: 0,
    lastCheckpointMs: 0,
    replayedRecords: 0,
    replayedBytes: 0,
    /** Sequence of the last record replayed (-1: none); a standby's position in the primary's log. */
    replayedThrough: -1,
    deliveredRecords: 0,
    droppedDuplicates: 0,
    backPressurePauses: 0,
    deliveryPauses: 0,
  };

  /** Where logs and checkpoints go: the options' storage, or the new version's folder once upgrading. */
  private storage: InstanceStorage;
  /** The checkpoint a standby last trimmed its output streams to. */
  private trimmedAt = 0;
  /** Impulse epoch of new output streams: the session's incarnation, renewed when a standby is promoted. */
  private epoch: number;

  constructor(private readonly o: CoreOptions) {
    this.storage = o.storage;
    this.epoch = o.epoch;
  }

  get isPrimary(): boolean {
    return this.phase === "primary";
  }

  // ---------------------------------------------------------------------------------------------
  // Start-up

  /** Runs the whole session: start-up or recovery, then normal processing until the binding goes away. */
  async run(): Promise<void> {
    const reading = this.readBinding();
    try {
      let checkpoints = await this.o.storage.listCheckpoints();
      let standby = false;
      if (this.o.replica !== undefined) {
        ({ checkpoints, standby } = await awaitRole(
          this.o.replica,
          this.o.storage,
          () => this.phase === "stopped",
        ));
      }
      if (checkpoints.length === 0) await this.firstStart();
      else await this.recover(checkpoints, standby);
      await reading;
    } catch (err) {
      this.stop(err);
      throw err;
    }
  }

  private async firstStart(): Promise<void> {
    const log = this.o.logger;
    // Logs without any checkpoint are a first start that crashed before its first checkpoint: start over.
    const stale = await this.o.storage.listLogs();
    if (stale.length > 0) {
      log.warn({ logs: stale }, "removing logs of an unfinished first start");
      await this.o.storage.deleteOlderThan(Math.max(...stale) + 1);
    }
    const committerId = randomInt(-0x80000000, 0x7fffffff);
    this.logNumber = 1;
    this.logWriter = await this.o.storage.openLogForAppend(1);
    this.committer = this.newCommitter(committerId, 0, new Map());
    this.committer.pause();
    log.info(
      { instance: this.o.instanceName, committerId },
      "first start: asking the binding for its initial checkpoint",
    );
    const initial = this.expectInitialMessage();
    const written = this.expectCheckpoint(1);
    this.becomingPrimaryCheckpoint = true;
    this.sendControl(MessageType.TakeBecomingPrimaryCheckpoint);
    const initialFrame = await initial;
    const writer = await written;
    // Record 0 (the InitialMessage) is made durable before checkpoint 1 is published and before the binding
    // sees it, so a crash anywhere here either restarts the first start or recovers with record 0 in the log.
    this.heldRecords = [];
    this.committer.offerUnsequenced(initialFrame);
    this.committer.resume();
    await this.committer.drain();
    await writer.commit();
    this.counters.checkpoints++;
    this.becomePrimary();
  }

  private async recover(checkpoints: number[], standby = false): Promise<void> {
    const log = this.o.logger;
    const sorted = [...checkpoints].sort((a, b) => b - a);
    let chosen: number | undefined;
    for (const n of sorted) {
      try {
        const r = await this.o.storage.openCheckpoint(n);
        await r.verify();
        await r.close();
        chosen = n;
        break;
      } catch (err) {
        log.error({ checkpoint: n, err: String(err) }, "checkpoint unusable, trying an older one");
      }
    }
    if (chosen === undefined)
      throw new Error("no usable checkpoint: every checkpoint file failed verification");
    this.phase = "replaying";
    const reader = await this.o.storage.openCheckpoint(chosen);
    const state = decodeIcState(reader.icState);
    log.info({ checkpoint: chosen, nextSequence: state.nextSequence }, "recovering");
    for (const [name, s] of state.outputs) this.streams.set(name, new OutputStream(name, s, this.epoch));
    const generated = new Map([...state.outputs].map(([name, s]) => [name, s.forkGenerated]));
    await this.o.determinism?.replayFrom(chosen, generated);
    // The checkpoint goes first, in its own record (sequence −2, check bytes 0 as AMBROSIA sends it).
    await sendCheckpoint(reader, state.committerId, (b) => this.write(b));

    const inputs = state.inputs;
    if (this.o.replica !== undefined) {
      await this.replicaReplay(
        this.o.replica,
        chosen,
        state.committerId,
        state.nextSequence,
        inputs,
        standby,
      );
      return;
    }
    // Then every logged record after it, in order, exactly as stored.
    const logs = (await this.o.storage.listLogs()).filter((n) => n >= chosen).sort((a, b) => a - b);
    let next = state.nextSequence;
    for (const n of logs) {
      // Streamed: a log of many gigabytes replays in bounded memory, paced by the binding's socket.
      const scan = this.o.storage.streamLog(n, {
        committerId: state.committerId,
        expectedFirstSequence: next,
        isLastLog: n === logs[logs.length - 1],
        repair: true,
      });
      for await (const unit of scan) {
        for (const [name, wm] of decodeMeta(unit.meta)) inputs.set(name, wm);
        await this.write(unit.dataRecord);
        this.o.determinism?.delivered(unit.sequence);
        this.counters.replayedRecords++;
        this.counters.replayedBytes += unit.dataRecord.length;
        next = unit.sequence + 1;
      }
      const tail = scan.result.tail;
      if (tail !== undefined) {
        log.warn(
          {
            log: n,
            at: tail.truncatedAt,
            droppedBytes: tail.droppedBytes,
            reason: tail.reason,
            detail: tail.detail,
          },
          tail.truncated ? "torn log tail truncated" : "torn log tail found",
        );
      }
    }
    // Always continue in a fresh log file: the last one may end in a repaired tail.
    this.logNumber = Math.max(chosen, ...logs) + 1;
    const upgrade = this.o.upgrade;
    if (upgrade !== undefined) this.storage = upgrade.storage;
    this.logWriter = await this.storage.openLogForAppend(this.logNumber);
    this.committer = this.newCommitter(state.committerId, next, inputs);
    this.committer.pause();
    const written = this.expectCheckpoint(this.logNumber);
    this.becomingPrimaryCheckpoint = true;
    this.sendControl(
      upgrade === undefined ? MessageType.TakeBecomingPrimaryCheckpoint : MessageType.UpgradeTakeCheckpoint,
    );
    const writer = await written;
    // The binding answered: every output of the replay arrived before its checkpoint.
    this.o.determinism?.replayDone();
    await writer.commit();
    await upgrade?.commit();
    this.counters.checkpoints++;
    log.info(
      {
        replayedRecords: this.counters.replayedRecords,
        replayedBytes: this.counters.replayedBytes,
        log: this.logNumber,
      },
      "recovered",
    );
    this.becomePrimary();
  }

  /**
   * Active/active replay: follows the shared log (a standby until the lease is ours, then to the end of what
   * is on disk), seals the newest log, continues in a new one, and becomes primary: a recovering replica that
   * held the lease from the start checkpoints as any recovery does; a promoted standby's binding is already
   * current, so it gets BecomingPrimary and no checkpoint.
   */
  private async replicaReplay(
    replica: ReplicaHooks,
    chosen: number,
    committerId: number,
    nextSequence: number,
    inputs: Map<string, InputWatermark>,
    standby: boolean,
  ): Promise<void> {
    const log = this.o.logger;
    if (standby) log.info({ checkpoint: chosen }, "standby: replaying the primary's log as it grows");
    const r = await followLog({
      storage: this.o.storage,
      committerId,
      firstLog: chosen,
      nextSequence,
      promoted: () => replica.tryPromote(),
      pollMs: replica.pollMs,
      stopped: () => this.phase === "stopped",
      onUnit: (unit) => this.replayUnit(unit, inputs),
      onNextLog: (n) => this.trimToCheckpoint(n),
    });
    if (r.tail !== undefined) {
      log.warn(
        { log: r.lastLog, at: r.tail.truncatedAt, droppedBytes: r.tail.droppedBytes, reason: r.tail.reason },
        "torn log tail truncated",
      );
    }
    await replica.seal(r.lastLog, r.endOffset);
    this.logNumber = r.lastLog + 1;
    for (;;) {
      try {
        this.logWriter = await this.o.storage.openLogForAppend(this.logNumber);
        break;
      } catch (err) {
        // Created after our read by a deposed primary: nothing in it was ever acknowledged. Seal it empty.
        if ((err as { sysCode?: string }).sysCode !== "EEXIST") throw err;
        await replica.seal(this.logNumber, 0);
        this.logNumber++;
      }
    }
    this.committer = this.newCommitter(committerId, r.nextSequence, inputs);
    this.committer.pause();
    if (standby) {
      this.epoch = await replica.newEpoch();
      for (const s of this.streams.values()) s.epoch = this.epoch;
      this.bindingPrimary = true;
      this.o.determinism?.promoted?.(this.logNumber);
      this.sendControl(MessageType.BecomingPrimary);
      log.info(
        { replayedRecords: this.counters.replayedRecords, log: this.logNumber, epoch: this.epoch },
        "standby promoted to primary",
      );
      this.becomePrimary();
      return;
    }
    const written = this.expectCheckpoint(this.logNumber);
    this.becomingPrimaryCheckpoint = true;
    this.sendControl(MessageType.TakeBecomingPrimaryCheckpoint);
    const writer = await written;
    this.o.determinism?.replayDone();
    await writer.commit();
    this.counters.checkpoints++;
    log.info({ replayedRecords: this.counters.replayedRecords, log: this.logNumber }, "recovered");
    this.becomePrimary();
  }

  /**
   * A standby reached log `n`. If the primary checkpointed there, that checkpoint lists what its receivers had
   * not yet acknowledged; everything before it was acknowledged, so the output this standby's binding
   * regenerated for it can go: a long-running standby keeps about one log's worth of output, not all of it.
   */
  private async trimToCheckpoint(n: number): Promise<void> {
    // Checkpoint n is published a little after log n is created: use the newest one up to n not used yet.
    const usable = (await this.o.storage.listCheckpoints()).filter((c) => c <= n && c > this.trimmedAt);
    if (usable.length === 0) return;
    n = Math.max(...usable);
    this.trimmedAt = n;
    let state: IcState;
    try {
      const reader = await this.o.storage.openCheckpoint(n);
      try {
        state = decodeIcState(reader.icState);
      } finally {
        await reader.close();
      }
    } catch (err) {
      // Deleted by retention meanwhile, or unreadable: trimming is an optimisation, skip it.
      this.o.logger.debug({ checkpoint: n, err: String(err) }, "standby: cannot read checkpoint to trim");
      return;
    }
    for (const [name, out] of state.outputs) {
      const s = this.streams.get(name);
      if (s === undefined || name === "") continue;
      const fork = out.entries.find((e) => e.kind === KIND_FORK);
      const impulse = out.entries.find((e) => e.kind === KIND_IMPULSE);
      s.ack({
        fork: fork === undefined ? out.forkGenerated : fork.seq - 1,
        impulse:
          impulse === undefined
            ? { epoch: Number.MAX_SAFE_INTEGER, n: Number.MAX_SAFE_INTEGER }
            : { epoch: impulse.epoch, n: impulse.seq - 1 },
      });
    }
  }

  private async replayUnit(unit: ScannedUnit, inputs: Map<string, InputWatermark>): Promise<void> {
    for (const [name, wm] of decodeMeta(unit.meta)) inputs.set(name, wm);
    await this.write(unit.dataRecord);
    this.o.determinism?.delivered(unit.sequence);
    this.counters.replayedRecords++;
    this.counters.replayedBytes += unit.dataRecord.length;
    this.counters.replayedThrough = unit.sequence;
    // Self calls the binding re-emits are already logged up to this watermark: a long-running standby must
    // not keep them all.
    const self = inputs.get("");
    if (self !== undefined) this.streams.get("")?.ack(self);
  }

  private becomePrimary(): void {
    this.phase = "primary";
    const held = this.heldRecords ?? [];
    this.heldRecords = undefined;
    for (const r of held) this.deliver(r);
    this.committer.resume(this.logWriter);
    for (const [name, stream] of this.streams) {
      if (name === "") this.scheduleSelfDelivery();
      else this.ensureLink(name, stream);
    }
    this.o.onPrimary?.();
    void this.retain();
  }

  private newCommitter(
    committerId: number,
    nextSequence: number,
    inputs: Map<string, InputWatermark>,
  ): Committer {
    return new Committer(this.logWriter!, committerId, nextSequence, inputs, {
      onCommitted: (pieces, seq, changed) => {
        this.o.determinism?.delivered(seq);
        this.deliver(pieces);
        for (const [name, wm] of changed) {
          if (name === "") {
            this.streams.get("")?.ack(wm);
            this.checkSpace();
          } else this.inboundAcks.get(name)?.(wm);
        }
        this.maybeTriggerCheckpoint();
      },
      onError: (err) => {
        this.o.logger.fatal({ err: String(err) }, "log write failed: stopping this instance session");
        this.stop(err);
      },
    });
  }

  // ---------------------------------------------------------------------------------------------
  // Binding I/O

  private deliver(pieces: readonly Uint8Array[]): void {
    if (this.heldRecords !== undefined) {
      this.heldRecords.push(pieces);
      return;
    }
    this.counters.deliveredRecords++;
    // One vectored write for header + payload pieces: the bytes that went to disk, without a copy.
    const sock = this.o.toBinding;
    if (pieces.length === 1) {
      sock.write(pieces[0]!);
    } else {
      sock.cork();
      for (const p of pieces) sock.write(p);
      sock.uncork();
    }
    if (sock.writableLength > this.o.maxBindingBufferBytes && !this.deliveryHeld) this.holdDelivery();
  }

  private deliveryHeld = false;

  /** The binding is not keeping up: stop committing and pause peers until its socket drains. */
  private holdDelivery(): void {
    this.deliveryHeld = true;
    this.counters.deliveryPauses++;
    this.committer.hold(true);
    this.o.onInboundPaused?.(true);
    this.o.logger.warn(
      { queued: this.o.toBinding.writableLength, limit: this.o.maxBindingBufferBytes },
      "the binding is not reading: holding commits and pausing peers",
    );
    this.o.toBinding.once("drain", () => {
      this.deliveryHeld = false;
      if (this.phase === "stopped") return;
      this.committer.hold(false);
      this.o.onInboundPaused?.(false);
      this.o.logger.info("the binding reads again: commits and peers resumed");
    });
  }

  private sendControl(
    type:
      | typeof MessageType.TakeCheckpoint
      | typeof MessageType.TakeBecomingPrimaryCheckpoint
      | typeof MessageType.UpgradeTakeCheckpoint
      | typeof MessageType.BecomingPrimary,
  ): void {
    this.o.toBinding.write(
      encodeRecord({
        committerId: this.committer.committerId,
        sequence: CONTROL_SEQUENCE,
        messages: [{ type }],
      }),
    );
  }

  /** Writes to the binding, waiting for the socket to drain when it is full (replay can be gigabytes). */
  private async write(bytes: Uint8Array): Promise<void> {
    if (this.phase === "stopped") throw new Error("binding connection closed");
    if (!this.o.toBinding.write(bytes)) {
      await new Promise<void>((resolve, reject) => {
        const done = (err?: Error) => {
          this.o.toBinding.off("drain", done);
          this.o.toBinding.off("close", done);
          if (err instanceof Error) reject(err);
          else if (this.o.toBinding.destroyed) reject(new Error("binding connection closed"));
          else resolve();
        };
        this.o.toBinding.on("drain", done);
        this.o.toBinding.on("close", done);
      });
    }
  }

  private initialWaiter: ((frame: Uint8Array) => void) | undefined;

  private expectInitialMessage(): Promise<Uint8Array> {
    return new Promise((resolve) => {
      this.initialWaiter = resolve;
    });
  }

  /**
   * Arms the reader for the binding's next Checkpoint. Resolves, once all of its bytes are on disk (not yet
   * published), with a function that publishes it.
   */
  private expectCheckpoint(n: number): Promise<{ commit: () => Promise<void> }> {
    const written = new Promise<{ commit: () => Promise<void> }>((resolve, reject) => {
      this.pendingCheckpoint = { n, resolve, reject };
    });
    // A stop can reject it before anything awaits it (a first start still waits for the InitialMessage):
    // whoever awaits it later still gets the rejection, but it must not count as unhandled meanwhile.
    written.catch(() => {});
    return written;
  }

  private pendingCheckpoint:
    | {
        n: number;
        resolve: (w: { commit: () => Promise<void> }) => void;
        reject: (err: unknown) => void;
        writer?: CheckpointWriter;
        length?: bigint;
        started?: number;
      }
    | undefined;

  /** The binding's Checkpoint message arrived: open the file and write the coordinator state first. */
  private async checkpointStarted(length: bigint): Promise<CheckpointWriter> {
    const p = this.pendingCheckpoint;
    if (p === undefined || p.writer !== undefined) {
      throw new BindingProtocolError("unexpected Checkpoint: none was requested");
    }
    if (this.initialWaiter !== undefined) {
      throw new BindingProtocolError("first start: the InitialMessage must come before the Checkpoint");
    }
    if (this.becomingPrimaryCheckpoint) {
      this.becomingPrimaryCheckpoint = false;
      this.bindingPrimary = true;
    }
    try {
      p.started = performance.now();
      p.length = length;
      p.writer = await this.storage.createCheckpoint(p.n);
      // The coordinator state is captured when the Checkpoint message arrives: every output the binding
      // produced before it has been routed, and the committer is paused, so inputs are exactly as logged.
      await p.writer.writeIcState(encodeIcState(this.snapshot()), length);
      return p.writer;
    } catch (err) {
      this.pendingCheckpoint = undefined;
      p.reject(err);
      throw err;
    }
  }

  /** All of the binding's checkpoint bytes were written. */
  private checkpointFinished(): void {
    const p = this.pendingCheckpoint;
    if (p?.writer === undefined) return;
    this.pendingCheckpoint = undefined;
    const { writer, length, started } = p;
    p.resolve({
      commit: async () => {
        await writer.commit(length!);
        this.counters.lastCheckpointBytes = Number(length);
        this.counters.lastCheckpointMs = performance.now() - started!;
      },
    });
  }

  private snapshot(): IcState {
    const outputs = new Map<string, ReturnType<OutputStream["snapshot"]>>();
    for (const [name, s] of this.streams) outputs.set(name, s.snapshot());
    return {
      committerId: this.committer.committerId,
      nextSequence: this.committer.nextSequence,
      inputs: new Map(this.committer.committed),
      outputs,
    };
  }

  private async readBinding(): Promise<void> {
    let writer: CheckpointWriter | undefined;
    try {
      for await (const ev of this.o.events) {
        if (this.phase === "stopped") return;
        if (ev.type === "rawBatch") {
          this.forwardBatch(ev);
          if (this.outputBytes() > this.o.maxOutputBytes) await this.outputSpace();
        } else if (typeof ev.type === "number") {
          const w = this.onBindingMessage(ev as Message);
          if (w !== undefined) {
            writer = await w;
            // A zero-length checkpoint has no chunks: the decoder still ends it, handled below.
          } else if (this.outputBytes() > this.o.maxOutputBytes) {
            await this.outputSpace();
          }
        } else if (ev.type === "checkpointChunk") {
          await writer!.appendAppState(ev.bytes);
        } else {
          // checkpointEnd: whoever asked for the checkpoint publishes it.
          writer = undefined;
          this.checkpointFinished();
        }
      }
      this.o.logger.info("the binding closed its connection");
      this.stop(new Error("the binding closed its connection"));
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === "ERR_STREAM_PREMATURE_CLOSE" || code === "ECONNRESET") {
        // The binding went away (it died, or was killed): an ordinary end of a session.
        this.o.logger.info({ reason: code }, "the binding disconnected");
      } else {
        this.o.logger.error({ err: String(err) }, "closing the binding connection");
      }
      this.stop(err);
    }
  }

  /** Handles one message from the binding; returns a promise for a checkpoint writer if it was a Checkpoint. */
  private onBindingMessage(m: Message): Promise<CheckpointWriter> | undefined {
    switch (m.type) {
      case MessageType.RPC:
        this.route(m as OutgoingRpc);
        return undefined;
      case MessageType.RPCBatch:
        for (const inner of m.messages) {
          if (inner.type !== MessageType.RPC) {
            throw new BindingProtocolError(`a binding's RPCBatch may hold only RPCs, not type ${inner.type}`);
          }
          this.route(inner as OutgoingRpc);
        }
        return undefined;
      case MessageType.AttachTo:
        if (m.destination !== "" && m.destination !== this.o.instanceName) this.stream(m.destination);
        return undefined;
      case MessageType.TakeCheckpoint:
        void this.checkpoint("requested by the binding");
        return undefined;
      case MessageType.InitialMessage: {
        const w = this.initialWaiter;
        if (w === undefined) throw new BindingProtocolError("InitialMessage is only valid at first start");
        this.initialWaiter = undefined;
        w(encodeMessage(m));
        return undefined;
      }
      case MessageType.Checkpoint:
        return this.checkpointStarted(m.length);
      case MessageType.Ping:
      case MessageType.PingReturn:
        return undefined;
      default:
        throw new BindingProtocolError(`message type ${m.type} may not be sent by a binding`);
    }
  }

  /** Unacknowledged outgoing bytes over all destinations, self included. */
  private outputBytes(): number {
    let n = 0;
    for (const s of this.streams.values()) n += s.pendingBytes;
    return n;
  }

  /**
   * Waits until acknowledgements bring the output below half the limit. Only a primary waits: before that no
   * link runs, so nothing could drain it, and during a checkpoint the binding must be read to the end of it.
   */
  private async outputSpace(): Promise<void> {
    if (this.phase !== "primary" || this.checkpointing) return;
    this.o.logger.warn(
      { outputBytes: this.outputBytes(), limit: this.o.maxOutputBytes },
      "output buffers full: pausing the binding until destinations acknowledge",
    );
    this.counters.backPressurePauses++;
    await new Promise<void>((resolve) => {
      this.spaceWaiter = resolve;
    });
    this.o.logger.info({ outputBytes: this.outputBytes() }, "output drained: reading the binding again");
  }

  private checkSpace(): void {
    if (
      this.spaceWaiter !== undefined &&
      (this.outputBytes() <= this.o.maxOutputBytes / 2 || this.phase === "stopped")
    ) {
      const w = this.spaceWaiter;
      this.spaceWaiter = undefined;
      w();
    }
  }

  private stream(name: string): OutputStream {
    let s = this.streams.get(name);
    if (s === undefined) {
      s = new OutputStream(name, undefined, this.epoch);
      this.streams.set(name, s);
      if (this.phase === "primary" && name !== "") this.ensureLink(name, s);
    }
    return s;
  }

  private route(rpc: OutgoingRpc): void {
    this.routeFrame(rpc.destination, rpc.rpcType, incomingFrame(rpc));
  }

  /** Reused by {@link forwardBatch} for every RPC: forwarding allocates only each RPC's view. */
  private readonly span = rpcSpan();
  private readonly destinations = new DestinationNames();

  /**
   * The binding's RPCBatch, forwarded without decoding its RPCs into objects: each RPC is validated where it lies,
   * rewritten in place into the incoming layout the receiver logs (the layouts differ only in the destination),
   * and its view routed. The batch's bytes are the decoder's fresh chunk, kept alive by the views until the
   * receiver acknowledges them. Large RPCs are copied out instead: their copy costs little beside their size, and
   * a view would keep a whole multi-megabyte batch alive (measured: retaining the binding's 4 MiB batches until
   * acknowledged made 64 KiB PTI about a quarter slower, its fresh buffers faulting in page by page).
   */
  private forwardBatch(b: RawBatch): void {
    const { buf } = b;
    const span = this.span;
    // Validated whole first (a Ping inside, valid on the wire but not from a binding, is refused as UNKNOWN_TYPE),
    // so a malformed batch routes none of its RPCs, as when batches were decoded before routing.
    forEachBatchItem(buf, b.typeAt, b.end, (start, end) => {
      scanRpcFrame(buf, start, end, "outgoing", span);
      this.destinations.read(buf, span.destStart, span.destEnd);
    });
    forEachBatchItem(buf, b.typeAt, b.end, (start, end) => {
      scanRpcFrame(buf, start, end, "outgoing", span);
      const dest = this.destinations.read(buf, span.destStart, span.destEnd);
      const frame =
        end - start < FORWARD_IN_PLACE_BYTES ? rewriteAsIncoming(buf, span) : copyAsIncoming(buf, span);
      this.routeFrame(dest, span.rpcType, frame);
    });
  }

  private routeFrame(destination: string, rpcType: RpcType, frame: Uint8Array): void {
    if (rpcType === RpcType.Impulse && !this.bindingPrimary) {
      throw new ImpulseDuringReplayError("the binding sent an Impulse while its log was being replayed");
    }
    // Our own name as destination means self (AMBROSIA would buffer it for a connection that never comes).
    const dest = destination === this.o.instanceName ? "" : destination;
    const s = this.stream(dest);
    if (!s.push(frame, rpcType)) {
      this.counters.droppedDuplicates++;
      return;
    }
    if (rpcType !== RpcType.Impulse)
      this.o.determinism?.output(dest, s.forkGenerated, frame, !this.bindingPrimary, this.logNumber);
    if (this.phase !== "primary") return;
    if (dest === "") this.scheduleSelfDelivery();
    else this.links.get(dest)?.notify();
  }

  private scheduleSelfDelivery(): void {
    if (this.selfDeliveryScheduled) return;
    this.selfDeliveryScheduled = true;
    queueMicrotask(() => {
      this.selfDeliveryScheduled = false;
      const s = this.streams.get("");
      if (s === undefined || this.phase !== "primary") return;
      for (const e of s.unsent()) {
        const r = this.committer.offer("", e);
        if (r === "gap") this.o.logger.error({ seq: e.seq }, "self stream gap: this is a bug");
      }
      s.ack(this.committer.committed.get("") ?? { fork: 0, impulse: { epoch: 0, n: 0 } });
    });
  }

  private ensureLink(name: string, s: OutputStream): void {
    if (this.links.has(name)) return;
    this.links.set(
      name,
      new OutboundLink(name, s, {
        self: this.o.instanceName,
        selfRegistrationId: this.o.registrationId,
        lookup: this.o.lookup,
        logger: this.o.logger,
        onAck: () => this.checkSpace(),
      }),
    );
  }

  // ---------------------------------------------------------------------------------------------
  // Inbound links (called by the coordinator's IC-port server after a valid handshake)

  /** Registers the sender's acknowledgement channel and returns what to tell it in WELCOME. */
  attachInbound(sender: string, sendAck: (wm: InputWatermark) => void): InputWatermark {
    this.inboundAcks.set(sender, sendAck);
    return this.committer.watermark(sender);
  }

  detachInbound(sender: string, sendAck: (wm: InputWatermark) => void): void {
    if (this.inboundAcks.get(sender) === sendAck) this.inboundAcks.delete(sender);
  }

  /** Offers entries received from `sender`; returns false on a sequence gap (the link must be reset). */
  offerInbound(sender: string, entries: readonly OutEntry[]): boolean {
    for (const e of entries) {
      const r = this.committer.offer(sender, e);
      if (r === "gap") return false;
      if (r === "duplicate") this.counters.droppedDuplicates++;
    }
    return true;
  }

  // ---------------------------------------------------------------------------------------------
  // Checkpoints

  private maybeTriggerCheckpoint(): void {
    if (
      this.o.logTriggerBytes > 0 &&
      !this.checkpointing &&
      this.committer.logSize >= this.o.logTriggerBytes
    ) {
      void this.checkpoint("log reached the trigger size");
    }
  }

  /** Rotates to a new log file and takes a checkpoint there (state at the start of that log). */
  async checkpoint(reason: string): Promise<void> {
    if (this.checkpointing || this.phase !== "primary") return;
    this.checkpointing = true;
    try {
      await this.committer.pause();
      const n = this.logNumber + 1;
      const newLog = await this.storage.openLogForAppend(n);
      this.o.logger.info({ checkpoint: n, reason }, "taking a checkpoint");
      const written = this.expectCheckpoint(n);
      this.sendControl(MessageType.TakeCheckpoint);
      const writer = await written;
      await writer.commit();
      this.counters.checkpoints++;
      const old = this.logWriter;
      this.logWriter = newLog;
      this.logNumber = n;
      this.committer.resume(newLog);
      await old?.close();
      await this.retain();
    } catch (err) {
      this.o.logger.error({ err: String(err) }, "checkpoint failed");
      this.stop(err);
    } finally {
      this.checkpointing = false;
    }
  }

  private async retain(): Promise<void> {
    // From the oldest checkpoint kept, not from the log number: a promoted standby's log has no checkpoint.
    const checkpoints = await this.storage.listCheckpoints();
    if (checkpoints.length <= this.o.keepCheckpoints) return;
    const keepFrom = checkpoints[checkpoints.length - this.o.keepCheckpoints]!;
    if (keepFrom > 1) await this.storage.deleteOlderThan(keepFrom);
  }

  // ---------------------------------------------------------------------------------------------

  stop(reason?: unknown): void {
    if (this.phase === "stopped") return;
    this.phase = "stopped";
    for (const l of this.links.values()) l.close();
    this.links.clear();
    this.o.toBinding.destroy();
    this.spaceWaiter?.();
    this.spaceWaiter = undefined;
    this.pendingCheckpoint?.reject(reason ?? new Error("stopped"));
    this.pendingCheckpoint = undefined;
    void this.committer?.pause().then(() => this.logWriter?.close());
    void this.o.determinism?.close();
    this.o.onStopped?.(reason);
  }

  /** Figures for the counters endpoint. */
  stats(): Record<string, unknown> {
    const links: Record<string, unknown> = {};
    for (const [name, l] of this.links)
      links[name] = { ...l.stats, pending: this.streams.get(name)?.pendingCount };
    return {
      phase: this.phase,
      log: this.logNumber,
      logBytes: this.committer?.logSize ?? 0,
      nextSequence: this.committer?.nextSequence,
      commit: this.committer?.stats,
      ...this.counters,
      links,
      selfPending: this.streams.get("")?.pendingCount ?? 0,
      outputBytes: this.outputBytes(),
      bindingQueuedBytes: this.o.toBinding.writableLength,
    };
  }
}
