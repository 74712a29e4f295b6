import { DefinitionError } from "./errors.js";

/** A logger that is silent while the instance replays its log (unless `logWhileReplaying`, as in `immortal debug`), so each line is printed once per live event. */
export interface ImmortalLogger {
  info(message: string, fields?: Record<string, unknown>): void;
  warn(message: string, fields?: Record<string, unknown>): void;
  error(message: string, fields?: Record<string, unknown>): void;
}

/** How a call made inside a handler ended, as its continuation handler receives it. */
export type CallOutcome<R> =
  | { readonly ok: true; readonly value: R }
  | { readonly ok: false; readonly error: { readonly name: string; readonly message: string } };

/**
 * A call made inside a handler. Handlers are synchronous (AMBROSIA's rules: complete in order, nothing in flight
 * at a checkpoint), so the result cannot be awaited there; instead it is delivered, as data, to one of this
 * Immortal's own handlers: `ctx.call(Counter, "c").add(1).onResult("added", { note: "x" })` later runs
 * `added(ctx, outcome, { note: "x" })`. The pending call is part of the checkpointed state, so this survives
 * any crash.
 */
export interface PendingCall<R> {
  readonly callId: number;
  /** Routes the outcome to `handler(ctx, outcome: CallOutcome<R>, context)`. Without it the result is dropped. */
  onResult(handler: string, context?: unknown): void;
  /** Type-only marker of the result type. */
  readonly __result?: R;
}

/** What a handler gets as its first argument. */
export interface HandlerContext<S> {
  /** The instance's state: mutate it in place (or replace its fields); it is checkpointed as a whole. */
  readonly state: S;
  /** This instance's name. */
  readonly self: string;
  /** True while the log is replayed (recovery); handlers should not need it, the logger uses it. */
  readonly replaying: boolean;
  /**
   * The time of the event that started this chain of messages, in ms since the epoch: an impulse or timer
   * carries the wall clock when it was sent, and every fork or call a handler sends inherits its own `now()`.
   * So it is the same on every replay, and it does not advance along a chain of forks.
   */
  now(): number;
  /** A pseudo-random number in [0, 1) seeded from the message's position in the log: the same on every replay. */
  random(): number;
  readonly log: ImmortalLogger;
  /** Fire-and-forget calls to another instance (or this one). */
  fork<T extends AnyImmortalType>(type: T, instance: string): ForkProxy<T>;
  /** Calls whose result is routed to a continuation handler (see `PendingCall`). */
  call<T extends AnyImmortalType>(type: T, instance: string): CallProxy<T>;
  /**
   * A durable timer: after `delayMs` (by the wall clock, once primary) this instance's `handler` runs with
   * `args`, fired as an impulse. Timers are part of the state, re-armed after recovery, and replaced by name.
   */
  setTimer(name: string, delayMs: number, handler: string, ...args: unknown[]): void;
  clearTimer(name: string): void;
}

/** The shape every handler has: the context, then its own arguments. */
export type Handler<S> = (ctx: HandlerContext<S>, ...args: never[]) => unknown;

export interface ImmortalDefinition<S, H extends Record<string, Handler<S>>> {
  /** Name of the type (for messages and errors); defaults to "Immortal". */
  readonly name?: string;
  /** The state of a new instance. */
  readonly state: () => S;
  readonly handlers: H;
  /** Runs once, at the instance's first start, before any other message (deterministic, logged). */
  readonly init?: (ctx: HandlerContext<S>) => void;
  /**
   * The code version this definition is (default 0): the registration's `--currentVersion` /
   * `--upgradeVersion` pick which definition of the `upgradeFrom` chain an instance runs.
   */
  readonly version?: number;
}

/**
 * How version N+1 comes from version N: the old definition (its handlers replay the old log) and a typed state
 * migration, applied when the coordinator asks for a live upgrade (UpgradeTakeCheckpoint) or a what-if test
 * (UpgradeService). Chains: version N may itself declare `upgradeFrom` N−1.
 */
export interface UpgradeFrom<O, S> {
  readonly immortal: ImmortalType<O, Record<string, Handler<O>>>;
  readonly migrate: (old: O) => S;
}

/** The state type of a defined Immortal: `StateOf<typeof CounterV0>`. */
export type StateOf<T> = T extends ImmortalType<infer S, infer _H> ? S : never;

/** A defined Immortal type: what `ctx.fork/ctx.call` and the runtime take. */
export interface ImmortalType<S, H extends Record<string, Handler<S>>> extends AnyImmortalType {
  readonly typeName: string;
  readonly initialState: () => S;
  readonly handlers: H;
  readonly init?: (ctx: HandlerContext<S>) => void;
  /** Stable wire method IDs (FNV-1a of the handler name, 31 bits, never 0). */
  readonly methodIds: ReadonlyMap<string, number>;
  readonly methodNames: ReadonlyMap<number, string>;
}

/** What every Immortal type has, whatever its state and handlers: the runtime needs no more. */
export interface AnyImmortalType {
  readonly typeName: string;
  /** Code version (0 unless the definition says otherwise). */
  readonly version: number;
  /** The previous version and the migration from its state, if this version declares one. */
  readonly upgradeFrom?: {
    readonly immortal: AnyImmortalType;
    readonly migrate: (old: never) => unknown;
  };
  readonly methodIds: ReadonlyMap<string, number>;
  readonly methodNames: ReadonlyMap<number, string>;
}

type HandlersOf<T> = T extends ImmortalType<infer _S, infer H> ? H : never;
type ArgsOf<F> = F extends (ctx: never, ...args: infer A) => unknown ? A : never;
type ResultOf<F> = F extends (...args: never[]) => infer R ? Awaited<R> : never;

/** `ctx.fork(T, name).method(...args)`: sends, returns nothing. */
export type ForkProxy<T> = {
  readonly [K in keyof HandlersOf<T>]: (...args: ArgsOf<HandlersOf<T>[K]>) => void;
};
/** `ctx.call(T, name).method(...args)`: sends, returns a `PendingCall` for a continuation. */
export type CallProxy<T> = {
  readonly [K in keyof HandlersOf<T>]: (
    ...args: ArgsOf<HandlersOf<T>[K]>
  ) => PendingCall<ResultOf<HandlersOf<T>[K]>>;
};
/** `node.call(T, name).method(...args)` outside handlers: an awaitable result. */
export type AsyncProxy<T> = {
  readonly [K in keyof HandlersOf<T>]: (
    ...args: ArgsOf<HandlersOf<T>[K]>
  ) => Promise<ResultOf<HandlersOf<T>[K]>>;
};
/** `node.impulse(T, name).method(...args)` outside handlers: resolves once the call is sent. */
export type ImpulseProxy<T> = {
  readonly [K in keyof HandlersOf<T>]: (...args: ArgsOf<HandlersOf<T>[K]>) => Promise<void>;
};

/** The method ID reserved for call results (AMBROSIA's bindings reserve negative IDs for the system). */
export const RESULT_METHOD_ID = -1;

/** FNV-1a over the UTF-8 name, folded to 31 bits; 0 is avoided so every ID is a positive method number. */
export function methodIdOf(name: string): number {
  let h = 0x811c9dc5;
  for (const byte of Buffer.from(name, "utf8")) {
    h ^= byte;
    h = Math.imul(h, 0x01000193);
  }
  const id = (h >>> 1) & 0x3fffffff;
  return id === 0 ? 1 : id;
}

/**
 * Defines an Immortal type from plain TypeScript: its state and its handlers. No code generation: method IDs
 * are hashes of handler names (stable when handlers are added or reordered), and the proxies' argument and
 * result types come from the handlers' own signatures.
 */
export function defineImmortal<S, H extends Record<string, Handler<S>>, O = never>(
  def: ImmortalDefinition<S, H> & { readonly upgradeFrom?: UpgradeFrom<O, S> },
): ImmortalType<S, H> {
  const typeName = def.name ?? "Immortal";
  const version = def.version ?? 0;
  if (!Number.isSafeInteger(version) || version < 0)
    throw new DefinitionError(`${typeName}: version ${version} must be a non-negative integer`);
  const from = def.upgradeFrom;
  if (from !== undefined) {
    if (typeof from.migrate !== "function" || typeof from.immortal?.typeName !== "string")
      throw new DefinitionError(`${typeName}: upgradeFrom needs { immortal: <previous version>, migrate }`);
    if (from.immortal.version >= version) {
      throw new DefinitionError(
        `${typeName}: version ${version} cannot upgrade from version ${from.immortal.version}; versions only go ` +
          "up (a downgrade is an upgrade to old code with a higher version number)",
      );
    }
  }
  if (typeof def.state !== "function")
    throw new DefinitionError(`${typeName}: "state" must be a function returning the initial state`);
  const methodIds = new Map<string, number>();
  const methodNames = new Map<number, string>();
  for (const [name, fn] of Object.entries(def.handlers)) {
    if (typeof fn !== "function")
      throw new DefinitionError(`${typeName}: handler "${name}" is not a function`);
    const id = methodIdOf(name);
    const clash = methodNames.get(id);
    if (clash !== undefined) {
      throw new DefinitionError(
        `${typeName}: handlers "${clash}" and "${name}" hash to the same method ID ${id}; rename one`,
      );
    }
    methodIds.set(name, id);
    methodNames.set(id, name);
  }
  return {
    typeName,
    initialState: def.state,
    handlers: def.handlers,
    init: def.init,
    methodIds,
    methodNames,
    version,
    ...(from === undefined ? {} : { upgradeFrom: { immortal: from.immortal, migrate: from.migrate } }),
  };
}
