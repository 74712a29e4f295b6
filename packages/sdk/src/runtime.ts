import {
  type ClientApp,
  type CloseInfo,
  CoordinatorClient,
  type DispatchedMessage,
  type DispatchInfo,
} from "@immortal/coordinator-client";
import { MessageType, RpcType } from "@immortal/wire";
import {
  type AnyImmortalType,
  type AsyncProxy,
  type Handler,
  type HandlerContext,
  type ImmortalLogger,
  type ImmortalType,
  type ImpulseProxy,
  type PendingCall,
  RESULT_METHOD_ID,
} from "./define.js";
import {
  EnvelopeError,
  ImmortalError,
  NotRunningError,
  RemoteHandlerError,
  UnknownMethodError,
  UpgradeError,
} from "./errors.js";
import { checkHandlersKept, migrateState, versionOf } from "./upgrade.js";

/** Which input a handler was running: the log record's sequence ID and the message's index in it. */
export interface InputPosition {
  readonly sequence: number;
  readonly index: number;
}

/**
 * Watches dispatch (what-if tests compare two versions with it): every input, every RPC a handler sends, every
 * handler that throws, each with the input's position. Called synchronously; must not throw.
 */
export interface DispatchObserver {
  onInput?(at: InputPosition, method: string): void;
  onSend?(
    at: InputPosition,
    rpc: { destination: string; methodId: number; rpcType: RpcType; args: Uint8Array },
  ): void;
  onHandlerError?(at: InputPosition, method: string, error: { name: string; message: string }): void;
}

/** How message arguments and the state become bytes (the default is @immortal/checkpoint's binary format). */
export interface Codec {
  encode(value: unknown): Uint8Array;
  decode(bytes: Uint8Array): unknown;
}

/** What the SDK keeps beside the app's state, in the same checkpoint. */
interface SdkState {
  /** Next id for calls made inside handlers (deterministic: part of the state). */
  nextCallId: number;
  /** Calls made inside handlers whose result has not come back: where to route it. */
  pending: Record<string, { handler?: string; context?: unknown; destination: string; method: string }>;
  /** Durable timers by name. */
  timers: Record<string, { due: number; handler: string; args: unknown[] }>;
}

interface Checkpointed<S> {
  readonly v: 1;
  readonly app: S;
  readonly sdk: SdkState;
}

/**
 * The SDK's envelope inside every RPC's argument bytes. `t` is the sender's clock when it sent the message —
 * the receiver's `ctx.now()` — so time is part of the logged input and replays identically.
 */
interface CallEnvelope {
  /** Sent at (ms since the epoch). */
  t: number;
  /** Arguments. */
  a: unknown[];
  /** Call id when the caller wants the result (a number inside handlers, a string outside). */
  c?: number | string;
  /** Caller's instance name, for the result. */
  f?: string;
  /** The method name, so that errors can name it. */
  m?: string;
  /** Set when a durable timer fired this impulse: the timer's name and due time. */
  tm?: string;
  td?: number;
}

interface ResultEnvelope {
  t: number;
  c: number | string;
  m: string;
  ok: boolean;
  v?: unknown;
  e?: { n: string; m: string };
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null;
}

function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface ImmortalOptions<S, H extends Record<string, Handler<S>>> {
  /** This instance's registered name. */
  readonly instanceName: string;
  readonly type: ImmortalType<S, H>;
  /** The coordinator's ports for this instance. */
  readonly receivePort: number;
  readonly sendPort: number;
  readonly host?: string;
  readonly codec: Codec;
  /** Where the logger writes (default: stderr lines prefixed with the instance name). */
  readonly logSink?: (line: string) => void;
  /**
   * Print `ctx.log` lines while the log replays too (time-travel debugging: a repro run never becomes primary
   * and exists to show them). Off by default, so each line is printed once per live event.
   */
  readonly logWhileReplaying?: boolean;
  readonly connectTimeoutMs?: number;
  /**
   * The registration's current version: the definition of that version in `type`'s `upgradeFrom` chain runs
   * (default: `type` itself). When it is older than `upgradeVersion`, the coordinator's UpgradeTakeCheckpoint
   * (live upgrade) or UpgradeService (what-if) migrates the state and switches to the newer definition.
   */
  readonly currentVersion?: number;
  /** Version to upgrade to (default: `type`'s own version). */
  readonly upgradeVersion?: number;
  readonly observer?: DispatchObserver;
}

type RunningType = ImmortalType<unknown, Record<string, Handler<unknown>>>;

/**
 * A running instance: the binding side of one Immortal. Handlers run synchronously, in log order; calls made
 * from outside handlers (`call`, `impulse`) are Impulses, the way non-deterministic input enters the system.
 */
export class Immortal<S, H extends Record<string, Handler<S>>> {
  readonly name: string;
  private readonly client: CoordinatorClient;
  private appState: S;
  private sdk: SdkState = { nextCallId: 1, pending: {}, timers: {} };
  private readonly outside = new Map<
    string,
    { resolve: (v: unknown) => void; reject: (e: unknown) => void; dest: string; method: string }
  >();
  private outsideSeq = 0;
  private readonly outsidePrefix = `${process.pid.toString(36)}.${Date.now().toString(36)}.`;
  private readonly armed = new Map<string, NodeJS.Timeout>();
  private current: { sequence: number; index: number; envelopeTime: number; replaying: boolean } = {
    sequence: 0,
    index: 0,
    envelopeTime: 0,
    replaying: true,
  };
  private readonly ctx: HandlerContext<S>;
  /** The current message's PRNG, created on first use (most handlers never draw a number). */
  private random: (() => number) | undefined;
  private randomSeed = 0;
  private readonly closedPromise: Promise<CloseInfo>;
  /** The code running now: an older version of `o.type` until an upgrade switches it. */
  private type: RunningType;

  constructor(private readonly o: ImmortalOptions<S, H>) {
    this.name = o.instanceName;
    this.type = (o.currentVersion === undefined
      ? o.type
      : versionOf(o.type, o.currentVersion)) as unknown as RunningType;
    // Fail here, not at the coordinator's upgrade request, when the app lacks the version to upgrade to.
    if (o.upgradeVersion !== undefined) versionOf(o.type, o.upgradeVersion);
    this.appState = this.type.initialState() as S;
    const sink = o.logSink ?? ((line: string) => process.stderr.write(`${line}\n`));
    const logger = (level: string) => (message: string, fields?: Record<string, unknown>) => {
      if (this.current.replaying && o.logWhileReplaying !== true) return;
      sink(
        `[${this.name}] ${level === "info" ? "" : `${level}: `}${message}${fields ? ` ${JSON.stringify(fields)}` : ""}`,
      );
    };
    const log: ImmortalLogger = { info: logger("info"), warn: logger("warn"), error: logger("error") };
    const self = this;
    this.ctx = {
      get state() {
        return self.appState;
      },
      self: this.name,
      get replaying() {
        return self.current.replaying;
      },
      now: () => this.current.envelopeTime,
      random: () => {
        this.random ??= mulberry32(this.randomSeed);
        return this.random();
      },
      log,
      fork: (type, instance) => this.forkProxy(type, instance) as never,
      call: (type, instance) =>
        this.proxy(type, (method, id, args) => {
          const callId = this.sdk.nextCallId++;
          const entry: SdkState["pending"][string] = { destination: instance, method };
          this.sdk.pending[String(callId)] = entry;
          this.send(instance, id, RpcType.Fork, {
            t: this.current.envelopeTime,
            a: args,
            c: callId,
            f: this.name,
            m: method,
          });
          const pending: PendingCall<unknown> = {
            callId,
            onResult(handler: string, context?: unknown) {
              entry.handler = handler;
              if (context !== undefined) entry.context = context;
            },
          };
          return pending;
        }) as never,
      setTimer: (name, delayMs, handler, ...args) => {
        if (!(handler in this.type.handlers)) throw new UnknownMethodError(this.type.typeName, handler);
        this.sdk.timers[name] = { due: this.current.envelopeTime + delayMs, handler, args };
        if (!this.current.replaying) this.arm(name);
      },
      clearTimer: (name) => {
        delete this.sdk.timers[name];
        const t = this.armed.get(name);
        if (t !== undefined) clearTimeout(t);
        this.armed.delete(name);
      },
    };
    const app: ClientApp = {
      onMessage: (m, info) => this.dispatch(m, info),
      saveState: () => o.codec.encode({ v: 1, app: this.appState, sdk: this.sdk } satisfies Checkpointed<S>),
      loadState: async (chunks) => {
        const parts: Uint8Array[] = [];
        for await (const c of chunks) parts.push(Buffer.from(c));
        const restored = o.codec.decode(Buffer.concat(parts));
        if (!isRecord(restored) || restored.v !== 1 || !isRecord(restored.sdk)) {
          throw new EnvelopeError(`${this.name}: the checkpoint is not an Immortal SDK checkpoint`);
        }
        this.appState = restored.app as S;
        this.sdk = restored.sdk as unknown as SdkState;
      },
      upgrade: () => this.upgrade(),
    };
    this.client = new CoordinatorClient({
      receivePort: o.receivePort,
      sendPort: o.sendPort,
      host: o.host,
      app,
      instanceName: o.instanceName,
      initialMessage: o.codec.encode({ t: Date.now() }),
      connectTimeoutMs: o.connectTimeoutMs,
      onPrimary: () => this.becamePrimary(),
    });
    this.closedPromise = new Promise((resolve) =>
      this.client.on("close", (info) => {
        // Outside calls still waiting can never be answered now: fail them, or an awaiting `main` hangs (and
        // a process with nothing else to do exits with code 13, silently).
        this.failOutside(`the coordinator connection ended (${info.reason})`);
        resolve(info);
      }),
    );
  }

  /** Connects to the coordinator and runs until closed. Resolves once connected. */
  async start(): Promise<this> {
    await this.client.start();
    return this;
  }

  /** Resolves when the instance is primary (recovered, live): outside calls are sent from then on. */
  whenPrimary(): Promise<void> {
    return this.client.whenPrimary();
  }

  /** The instance's state (read it; change it only in handlers). */
  get state(): S {
    return this.appState;
  }

  /** Resolves with the reason once the instance stopped (closed, or its coordinator went away). */
  get closed(): Promise<CloseInfo> {
    return this.closedPromise;
  }

  async close(): Promise<void> {
    for (const t of this.armed.values()) clearTimeout(t);
    this.armed.clear();
    await this.client.close();
    this.failOutside("closed");
  }

  private failOutside(why: string): void {
    for (const [, p] of this.outside)
      p.reject(new NotRunningError(`${this.name}: ${why} before ${p.dest}.${p.method} answered`));
    this.outside.clear();
  }

  /**
   * Asks the coordinator to take a checkpoint now (it also takes them as its log grows). A state that cannot
   * be serialized stops the instance here, with a `NotSerializableError` naming where the bad value is.
   */
  checkpoint(): void {
    this.client.requestCheckpoint();
  }

  /** An awaitable call from outside handlers (sent as an Impulse once primary). */
  call<T extends AnyImmortalType>(type: T, instance: string): AsyncProxy<T> {
    return this.proxy(type, (method, id, args) => {
      const callId = this.outsidePrefix + String(++this.outsideSeq);
      return new Promise((resolve, reject) => {
        this.outside.set(callId, { resolve, reject, dest: instance, method });
        this.whenPrimary().then(
          () =>
            this.send(instance, id, RpcType.Impulse, {
              t: Date.now(),
              a: args,
              c: callId,
              f: this.name,
              m: method,
            }),
          reject,
        );
      });
    }) as AsyncProxy<T>;
  }

  /** A fire-and-forget Impulse from outside handlers (timers, user input, web requests). */
  impulse<T extends AnyImmortalType>(type: T, instance: string): ImpulseProxy<T> {
    return this.proxy(type, async (method, id, args) => {
      await this.whenPrimary();
      this.send(instance, id, RpcType.Impulse, { t: Date.now(), a: args, m: method });
    }) as ImpulseProxy<T>;
  }

  // ---------------------------------------------------------------------------------------------------------

  /**
   * Fork proxies by type and instance. A handler that forks in a loop (`ctx.fork(T, "x").m(…)` per message, as
   * PTI's client does) would otherwise build a proxy and a method closure per call; a proxy holds no per-call
   * state (the envelope's time is read when it sends), so one per pair serves every handler. Bounded: cleared
   * when it holds this many pairs, so an app forking to ever new instances does not grow it without end.
   */
  private forkProxies = new Map<AnyImmortalType, Map<string, unknown>>();
  private forkProxyCount = 0;
  private static readonly FORK_PROXY_LIMIT = 1024;

  private forkProxy(type: AnyImmortalType, instance: string): unknown {
    let byInstance = this.forkProxies.get(type);
    const cached = byInstance?.get(instance);
    if (cached !== undefined) return cached;
    if (this.forkProxyCount >= Immortal.FORK_PROXY_LIMIT) {
      this.forkProxies.clear();
      this.forkProxyCount = 0;
      byInstance = undefined;
    }
    const proxy = this.proxy(type, (method, id, args) =>
      this.send(instance, id, RpcType.Fork, { t: this.current.envelopeTime, a: args, m: method }),
    );
    if (byInstance === undefined) {
      byInstance = new Map();
      this.forkProxies.set(type, byInstance);
    }
    byInstance.set(instance, proxy);
    this.forkProxyCount++;
    return proxy;
  }

  private proxy(
    type: AnyImmortalType,
    send: (method: string, id: number, args: unknown[]) => unknown,
  ): unknown {
    // Each method's function is made once per proxy (a cached fork proxy is used for many calls).
    const methods = new Map<string, (...args: unknown[]) => unknown>();
    return new Proxy(
      {},
      {
        get: (_target, prop) => {
          if (typeof prop !== "string") return undefined;
          const made = methods.get(prop);
          if (made !== undefined) return made;
          const id = type.methodIds.get(prop);
          if (id === undefined) {
            // `then` is probed by `await`: answer like a plain object, not with an error.
            if (prop === "then") return undefined;
            throw new UnknownMethodError(type.typeName, prop);
          }
          const f = (...args: unknown[]) => send(prop, id, args);
          methods.set(prop, f);
          return f;
        },
      },
    );
  }

  private send(
    instance: string,
    methodId: number,
    rpcType: RpcType,
    envelope: CallEnvelope | ResultEnvelope,
  ): void {
    const dest = instance === this.name ? "" : instance;
    const args = this.o.codec.encode(envelope);
    this.o.observer?.onSend?.(this.at(), { destination: dest, methodId, rpcType, args });
    this.client.sendRpc(dest, methodId, rpcType, args);
  }

  private at(): InputPosition {
    return { sequence: this.current.sequence, index: this.current.index };
  }

  /** Live upgrade or what-if: migrate the state and switch to the newer definition (checked before switching). */
  private upgrade(): void {
    const to = versionOf(this.o.type, this.o.upgradeVersion ?? this.o.type.version) as unknown as RunningType;
    if (to === this.type) {
      throw new UpgradeError(
        `${this.name}: the coordinator asked for an upgrade, but ${to.typeName} version ${to.version} is already running`,
      );
    }
    checkHandlersKept(to, this.sdk.pending, this.sdk.timers);
    this.appState = migrateState(this.type, to, this.appState) as S;
    this.type = to;
  }

  private dispatch(m: DispatchedMessage, info: DispatchInfo): void {
    if (info.sequence !== this.current.sequence) {
      this.current.sequence = info.sequence;
      this.current.index = 0;
    } else {
      this.current.index++;
    }
    this.current.replaying = info.replaying;
    // Seeded by the message's position in the log: identical on every replay.
    this.randomSeed = Math.imul(info.sequence, 0x9e3779b1) ^ this.current.index;
    this.random = undefined;
    if (m.type === MessageType.InitialMessage) {
      // The InitialMessage carries the first start's wall clock (logged, so `now()` in `init` replays the same).
      const env = m.data.length > 0 ? this.o.codec.decode(m.data) : undefined;
      this.current.envelopeTime = isRecord(env) && typeof env.t === "number" ? env.t : 0;
      this.type.init?.(this.ctx);
      return;
    }
    const env = this.o.codec.decode(m.args);
    if (!isRecord(env) || typeof env.t !== "number") {
      throw new EnvelopeError(`${this.name}: method ${m.methodId} carries no SDK envelope`);
    }
    this.current.envelopeTime = env.t;
    if (m.methodId === RESULT_METHOD_ID) {
      this.onResult(env as unknown as ResultEnvelope);
      return;
    }
    this.onCall(m.methodId, env as unknown as CallEnvelope);
  }

  /** Sends a call's result back to its caller (a fork from a handler: regenerated on replay, delivered once). */
  private reply(env: CallEnvelope, methodId: number, r: Omit<ResultEnvelope, "t" | "c" | "m">): void {
    if (env.c === undefined || env.f === undefined) return;
    this.send(env.f, RESULT_METHOD_ID, RpcType.Fork, {
      t: this.current.envelopeTime,
      c: env.c,
      m: env.m ?? String(methodId),
      ...r,
    });
  }

  private onCall(methodId: number, env: CallEnvelope): void {
    const name = this.type.methodNames.get(methodId);
    this.o.observer?.onInput?.(this.at(), name ?? env.m ?? `#${methodId}`);
    if (name === undefined) {
      const err = new UnknownMethodError(this.type.typeName, env.m ?? `#${methodId}`);
      this.o.observer?.onHandlerError?.(this.at(), env.m ?? `#${methodId}`, err);
      this.ctx.log.error(err.message);
      this.reply(env, methodId, { ok: false, e: { n: err.name, m: err.message } });
      return;
    }
    if (env.tm !== undefined) {
      // A durable timer fired: it is done (deterministically, as part of handling its logged impulse) — unless
      // a handler re-set it since, in which case the newer timer stays.
      if (this.sdk.timers[env.tm]?.due === env.td) delete this.sdk.timers[env.tm];
    }
    const handler = this.type.handlers[name] as unknown as (
      ctx: HandlerContext<S>,
      ...args: unknown[]
    ) => unknown;
    let value: unknown;
    try {
      value = env.a === undefined || env.a.length === 0 ? handler(this.ctx) : handler(this.ctx, ...env.a);
    } catch (err) {
      const e = err instanceof Error ? err : new Error(String(err));
      this.o.observer?.onHandlerError?.(this.at(), name, e);
      this.ctx.log.error(`${name} threw: ${e.message}`);
      this.reply(env, methodId, { ok: false, e: { n: e.name, m: e.message } });
      return;
    }
    if (value instanceof Promise) {
      throw new ImmortalError(
        `${this.type.typeName}.${name} returned a promise: handlers must be synchronous`,
      );
    }
    if (env.c !== undefined) this.reply(env, methodId, { ok: true, v: value });
  }

  private onResult(r: ResultEnvelope): void {
    if (typeof r.c === "string") {
      // An outside call: settle its promise if this process made it (a replay, or another process, did not).
      const p = this.outside.get(r.c);
      if (p === undefined) return;
      this.outside.delete(r.c);
      if (r.ok) p.resolve(r.v);
      else p.reject(new RemoteHandlerError(p.dest, p.method, r.e?.n ?? "Error", r.e?.m ?? "unknown error"));
      return;
    }
    const key = String(r.c);
    const pending = this.sdk.pending[key];
    this.o.observer?.onInput?.(this.at(), pending?.handler ?? `(result of call ${key})`);
    if (pending === undefined) return;
    delete this.sdk.pending[key];
    if (pending.handler === undefined) return;
    const handler = this.type.handlers[pending.handler] as unknown as
      | ((ctx: HandlerContext<S>, ...args: unknown[]) => unknown)
      | undefined;
    if (handler === undefined) {
      this.ctx.log.error(
        `continuation "${pending.handler}" of a call to ${pending.destination}.${pending.method} is not a handler`,
      );
      return;
    }
    const outcome = r.ok
      ? { ok: true, value: r.v }
      : { ok: false, error: { name: r.e?.n ?? "Error", message: r.e?.m ?? "" } };
    try {
      handler(this.ctx, outcome, pending.context);
    } catch (err) {
      const e = err instanceof Error ? err : new Error(String(err));
      this.o.observer?.onHandlerError?.(this.at(), pending.handler, e);
      this.ctx.log.error(
        `continuation ${pending.handler} threw: ${err instanceof Error ? err.message : String(err)}`,
      );
    }
  }

  private becamePrimary(): void {
    this.current.replaying = false;
    for (const name of Object.keys(this.sdk.timers)) this.arm(name);
  }

  /** Arms a durable timer's wall-clock alarm; when it rings, the handler runs as a logged impulse to self. */
  private arm(name: string): void {
    const timer = this.sdk.timers[name];
    if (timer === undefined) return;
    const old = this.armed.get(name);
    if (old !== undefined) clearTimeout(old);
    const id = this.type.methodIds.get(timer.handler);
    if (id === undefined) return;
    const t = setTimeout(
      () => {
        this.armed.delete(name);
        if (this.client.state !== "primary") return;
        this.send(this.name, id, RpcType.Impulse, {
          t: Date.now(),
          a: timer.args,
          m: timer.handler,
          tm: name,
          td: timer.due,
        });
      },
      Math.max(0, timer.due - Date.now()),
    );
    t.unref?.();
    this.armed.set(name, t);
  }
}

/** Starts an instance: connects to its coordinator and recovers or first-starts it. */
export async function startImmortal<S, H extends Record<string, Handler<S>>>(
  options: ImmortalOptions<S, H>,
): Promise<Immortal<S, H>> {
  return new Immortal(options).start();
}
