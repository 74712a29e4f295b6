import type { IncomingRpc, InitialMessage } from "@immortal/wire";
import type { CoordinatorClientError } from "./errors.js";

/**
 * Where the client is in its life (see the README's state machine):
 * - `idle`: constructed, `start()` not called yet;
 * - `connecting`: opening the receive port, then the send port (retrying while the coordinator is not up);
 * - `starting`: both sockets open, waiting for the coordinator's first record;
 * - `recovering`: a checkpoint is being loaded or the log replayed (dispatch says `replaying: true`); a repro
 *   (time-travel / debug) run stays here for good, since its coordinator never makes it primary;
 * - `replaying-whatif`: an UpgradeService arrived: the log is replayed on upgraded code, never becoming primary;
 * - `primary`: normal processing; impulses may be sent;
 * - `closed`: stopped (see `CloseInfo`).
 */
export type ClientState =
  | "idle"
  | "connecting"
  | "starting"
  | "recovering"
  | "replaying-whatif"
  | "primary"
  | "closed";

/** What the app's `onMessage` receives: an RPC, or the InitialMessage the app supplied at first start. */
export type DispatchedMessage = IncomingRpc | InitialMessage;

export interface DispatchInfo {
  /** True until the instance is primary: the message is replayed from the log (or a what-if / repro run). */
  readonly replaying: boolean;
  /** Sequence ID of the log record carrying the message (one record may carry many messages). */
  readonly sequence: number;
}

/** Anything that yields byte chunks once (a generator, an array of buffers, a Readable). */
export type ChunkSource = AsyncIterable<Uint8Array> | Iterable<Uint8Array>;

/**
 * The app's state for a checkpoint, streamed. `length` is the exact number of bytes `chunks` yields; a chunk
 * must not be modified after it is yielded (the socket may still hold it). Without `length` the client reads
 * all of `chunks` into memory first to count them (convenient for small states; avoid it for large ones).
 */
export interface StateSnapshot {
  readonly length?: bigint;
  readonly chunks: ChunkSource;
}

/** What `saveState` may return: the whole state as one buffer, or a stream of it. */
export type SavedState = Uint8Array | StateSnapshot;

/**
 * The app side of the engine: state save/load and message dispatch. The SDK implements this; an app may too.
 */
export interface ClientApp {
  /**
   * Handles one message, in log order. Called synchronously, one message at a time. It may send RPCs
   * (`client.sendRpc`) and must be deterministic (it runs again on replay).
   *
   * Returning a promise makes the client *busy*: nothing else is dispatched, no checkpoint is taken, and the
   * socket is paused until it settles (a rejection is fatal). That keeps AMBROSIA's rules (handlers complete
   * in order; a TakeCheckpoint is answered only after every earlier handler completed) for async handlers too,
   * at the cost of one promise per message: keep handlers synchronous where you can.
   */
  onMessage(message: DispatchedMessage, info: DispatchInfo): void | PromiseLike<void>;
  /**
   * The state to checkpoint. Called with nothing dispatched meanwhile, after every earlier handler finished
   * and every RPC they sent was written. May be async (dispatch waits).
   */
  saveState(): SavedState | PromiseLike<SavedState>;
  /**
   * Restores the state from `chunks` (exactly `length` bytes, streamed as they arrive: never held whole). Must
   * read every byte before it resolves; nothing is dispatched until it has.
   */
  loadState(chunks: AsyncIterable<Uint8Array>, length: bigint): void | PromiseLike<void>;
  /**
   * Live upgrade (`whatIf: false`: after replay on the old code, before the upgraded checkpoint) or what-if
   * test (`whatIf: true`: after the checkpoint loaded, before the replay on the new code). Switch code and
   * state here. Without this hook an upgrade request is a `ProtocolError`.
   */
  upgrade?(info: { readonly whatIf: boolean }): void | PromiseLike<void>;
}

export interface CoordinatorClientOptions {
  /** The coordinator's receive port (binding → coordinator). Connected first. */
  readonly receivePort: number;
  /** The coordinator's send port (coordinator → binding). Connected second. */
  readonly sendPort: number;
  /** Default `127.0.0.1`; `localhost` and `::1` work too. */
  readonly host?: string;
  readonly app: ClientApp;
  /** This instance's name: an RPC to it is a self-call (no AttachTo, destination sent as ""). */
  readonly instanceName?: string;
  /** Bytes of the InitialMessage sent at first start; it comes back as log record 0. Default: empty. */
  readonly initialMessage?: Uint8Array;
  /** Give up connecting after this long (default 60 000 ms). */
  readonly connectTimeoutMs?: number;
  /** First retry delay while the coordinator is not up (default 50 ms), growing to `connectRetryMaxMs`. */
  readonly connectRetryMs?: number;
  /** Longest retry delay (default 250 ms). */
  readonly connectRetryMaxMs?: number;
  /**
   * Output back-pressure: when more than this many bytes wait in the socket to the coordinator, the client
   * stops reading (and so dispatching) until it drains. Default 8 MiB.
   */
  readonly highWaterMark?: number;
  /** Checkpoint bytes waiting for `loadState` above which the client pauses the socket. Default 4 MiB. */
  readonly loadHighWaterMark?: number;
  /** An RPCBatch is sealed once its messages reach this many bytes (later RPCs of the tick start a new one). Default 4 MiB. */
  readonly maxBatchBytes?: number;
  /** Refuse records longer than this (default 256 MiB, the coordinator's own limit). */
  readonly maxRecordSize?: number;
  /** Verify each record's xxHash64 check bytes (default true). */
  readonly verifyCheckBytes?: boolean;
  /** Called on every state change (same as `on("state", …)`). */
  readonly onStateChange?: (state: ClientState, previous: ClientState) => void;
  /** Called once the instance is primary (same as `on("primary", …)`): the moment to start sending impulses. */
  readonly onPrimary?: () => void;
}

/** Why the client stopped. */
export interface CloseInfo {
  /** `closed`: `close()` was called; `disconnected`: the coordinator went away; `error`: see `error`. */
  readonly reason: "closed" | "disconnected" | "error";
  readonly error?: CoordinatorClientError;
}

/** A checkpoint went out (`saved`) or came in (`loaded`). */
export interface CheckpointInfo {
  readonly direction: "saved" | "loaded";
  /** The app's state bytes (without the 16-byte envelope). */
  readonly length: bigint;
  /** The log sequence ID the checkpoint resumes at. */
  readonly nextSequence: number;
}

/** Event names and listener arguments of `client.on(…)`. */
export interface ClientEvents {
  state: [state: ClientState, previous: ClientState];
  primary: [];
  checkpoint: [info: CheckpointInfo];
  close: [info: CloseInfo];
}
