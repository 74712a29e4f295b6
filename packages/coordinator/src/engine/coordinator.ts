import { rename, writeFile } from "node:fs/promises";
import net from "node:net";
import path from "node:path";
import pino, { type Logger } from "pino";
import { FatalError } from "../cli/errors.js";
import { divergenceHeadline, SessionDeterminism } from "../determinism/index.js";
import type { Registry } from "../registry/index.js";
import { ActiveActive } from "../replication/active-active.js";
import type { LeaseTiming } from "../replication/lease.js";
import { FileInstanceStorage } from "../storage/index.js";
import { FormatError } from "./bin.js";
import { InstanceCore } from "./core.js";
import { bindingForwardingEvents } from "./lb-stream.js";
import {
  encodeAck,
  encodeRefuse,
  encodeWelcome,
  LINK_VERSION,
  LinkFrameReader,
  LinkFrameType,
} from "./link-protocol.js";
import type { AddressLookup } from "./links.js";
import { listenExclusive } from "./listen.js";
import type { InputWatermark } from "./state.js";
import { checkVersionFolders, prepareUpgrade, removeStaleMarker, type UpgradeTarget } from "./upgrade.js";

export interface CoordinatorConfig {
  instanceName: string;
  registry: Registry;
  /** IC ↔ IC listener. 0 picks a free port (tests); the address is published in the registry either way. */
  icPort: number;
  /** Address other coordinators use to reach this one (default 127.0.0.1); also the listen address. */
  host?: string;
  receivePort: number;
  sendPort: number;
  /** Log folder; the instance's files go to `<logDir>/<instance>_<version>/`. */
  logDir: string;
  currentVersion: number;
  /** A version > currentVersion makes the next binding session a live upgrade to it (see ./upgrade.ts). */
  upgradeVersion?: number;
  logTriggerSizeMB: number;
  keepCheckpoints?: number;
  /** Unacknowledged outgoing bytes before the binding is paused (default 256 MiB). */
  maxOutputBytes?: number;
  /** Bytes queued to a binding that is not reading before commits are held and peers paused (default 16 MiB). */
  maxBindingBufferBytes?: number;
  /**
   * Active/active: this process is replica `replicaNum` of the instance; the replicas share the log and the
   * one holding its lease is primary (replication/). Off: the single coordinator of the instance.
   */
  activeActive?: boolean;
  replicaNum?: number;
  /** Lease timing for active/active (default: `leaseTiming()`). */
  leaseTiming?: LeaseTiming;
  /** Where lines for operators go (`Ready`, `Connected!`); default stdout. */
  out?: (line: string) => void;
  logger?: Logger;
  /**
   * Called with a condition that restarting the session cannot fix (corrupt log, unusable checkpoints), after
   * the coordinator has stopped. Without it, `FATAL ERROR: …` is printed and the process exits with code 1.
   */
  onFatal?: (err: Error) => void;
  /** Record digests of outgoing forks and check replays against them (default on; src/determinism). */
  determinism?: boolean;
  /** A divergence found while recovering stops the coordinator (`FATAL ERROR`) instead of being reported only. */
  strictDeterminism?: boolean;
}

/**
 * The Immortal Coordinator for one instance: owns the binding's two local ports and the IC ↔ IC port, and runs
 * one `InstanceCore` per attached binding. It outlives its bindings: a binding that disconnects or sends garbage
 * loses its session; the next one recovers from disk, while other coordinators keep being served.
 */
export class Coordinator {
  private core: InstanceCore | undefined;
  /** Peers are not read while the binding does not keep up (new peer connections start paused too). */
  private inboundPaused = false;
  /** A binding pair was accepted and its session is being set up. */
  private starting = false;
  private pendingReceive: net.Socket | undefined;
  private pendingSend: net.Socket | undefined;
  private readonly servers: net.Server[] = [];
  private readonly inbound = new Set<net.Socket>();
  private stopped = false;
  private sessions = 0;
  private statsTimer: NodeJS.Timeout | undefined;
  readonly logger: Logger;
  private readonly out: (line: string) => void;
  icPort = 0;
  private registrationId = "";
  private epoch = 0;
  private instanceDir = "";
  /** The version whose folder sessions recover from; becomes the upgrade version once an upgrade commits. */
  private version = 0;
  private aa: ActiveActive | undefined;
  /** Resolves when the current (or next) session stops; tests use it. */
  private sessionWaiters: Array<(reason: unknown) => void> = [];
  private determinism: SessionDeterminism | undefined;

  constructor(private readonly cfg: CoordinatorConfig) {
    this.logger =
      cfg.logger ??
      pino(
        { base: { instance: cfg.instanceName }, level: process.env.IMMORTAL_LOG_LEVEL ?? "info" },
        pino.destination(2),
      );
    this.out = cfg.out ?? ((line) => process.stdout.write(`${line}\n`));
  }

  async start(): Promise<void> {
    const { cfg } = this;
    const reg = await cfg.registry.get(cfg.instanceName);
    if (reg === undefined) {
      throw new FatalError(
        `instance "${cfg.instanceName}" is not registered; register it with 'immortal register'`,
      );
    }
    this.registrationId = reg.registrationId;
    this.version = cfg.currentVersion;
    this.instanceDir = path.join(cfg.logDir, `${cfg.instanceName}_${cfg.currentVersion}`);
    if (!this.upgradePending()) {
      await checkVersionFolders(cfg.logDir, cfg.instanceName, cfg.currentVersion);
      await removeStaleMarker(this.instanceDir);
    }
    // The registry's metadata update is atomic and durable (fsync + rename), which the incarnation needs.
    const meta = await cfg.registry.updateMeta(cfg.instanceName, (m) => ({
      ...m,
      incarnation: (m.incarnation ?? 0) + 1,
    }));
    this.epoch = meta.incarnation!;
    const host = cfg.host ?? "127.0.0.1";

    const receive = net.createServer((s) => this.onBindingSocket("receive", s));
    const send = net.createServer((s) => this.onBindingSocket("send", s));
    const ic = net.createServer((s) => this.onPeerSocket(s));
    for (const [server, port, what] of [
      [receive, cfg.receivePort, "receive"],
      [send, cfg.sendPort, "send"],
    ] as const) {
      try {
        await listenExclusive(server, port, "127.0.0.1");
      } catch (err) {
        throw new FatalError(`${what} port ${port} is not available: ${(err as Error).message}`);
      }
      this.servers.push(server);
      // Node 20 may resolve "localhost" to ::1: listen there too when the host has IPv6 loopback.
      const v6 = net.createServer((s) => this.onBindingSocket(what, s));
      try {
        await listenExclusive(v6, port, "::1");
        this.servers.push(v6);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code === "EADDRINUSE") throw new FatalError(`${what} port ${port} is already in use on ::1`);
      }
    }
    try {
      await listenExclusive(ic, cfg.icPort, host);
    } catch (err) {
      throw new FatalError(`IC port ${cfg.icPort} is not available: ${(err as Error).message}`);
    }
    this.servers.push(ic);
    this.icPort = (ic.address() as net.AddressInfo).port;
    if (cfg.activeActive) {
      // Peers must reach the primary only: a replica publishes its address when it becomes primary.
      this.aa = new ActiveActive({
        instanceDir: this.instanceDir,
        owner: `${cfg.instanceName} replica ${cfg.replicaNum ?? 0} (pid ${process.pid})`,
        ...(cfg.leaseTiming === undefined ? {} : { timing: cfg.leaseTiming }),
        newEpoch: async () => {
          this.epoch = await this.nextIncarnation();
          return this.epoch;
        },
        onLost: (err) =>
          this.die(new FatalError(`${err.message}; this replica stops so that it never writes again`)),
      });
    } else await this.publishAddress();
    this.logger.info(
      {
        receivePort: cfg.receivePort,
        sendPort: cfg.sendPort,
        icPort: this.icPort,
        epoch: this.epoch,
        dir: this.instanceDir,
      },
      "coordinator ready",
    );
    this.statsTimer = setInterval(() => void this.writeStats(), 1000);
    this.statsTimer.unref();
    this.out("Ready");
  }

  // ---------------------------------------------------------------------------------------------
  // Binding connections: the receive port first, then the send port (either order is tolerated).

  private onBindingSocket(which: "receive" | "send", s: net.Socket): void {
    s.setNoDelay(true);
    if (this.stopped || this.core !== undefined || this.starting) {
      this.logger.warn({ port: which }, "a binding is already attached; refusing another connection");
      s.destroy();
      return;
    }
    if (which === "receive") {
      this.pendingReceive?.destroy();
      this.pendingReceive = s;
    } else {
      this.pendingSend?.destroy();
      this.pendingSend = s;
    }
    s.once("close", () => {
      if (this.pendingReceive === s) this.pendingReceive = undefined;
      if (this.pendingSend === s) this.pendingSend = undefined;
    });
    s.on("error", () => {});
    if (this.pendingReceive !== undefined && this.pendingSend !== undefined) {
      const fromBinding = this.pendingReceive;
      const toBinding = this.pendingSend;
      this.pendingReceive = undefined;
      this.pendingSend = undefined;
      this.startSession(fromBinding, toBinding);
    }
  }

  private async publishAddress(): Promise<void> {
    const host = this.cfg.host ?? "127.0.0.1";
    await this.cfg.registry.updateMeta(this.cfg.instanceName, (m) => ({
      ...m,
      icAddress: { host, port: this.icPort, pid: process.pid, startedAt: new Date().toISOString() },
    }));
  }

  /**
   * Bumps and returns the instance's incarnation, durably. Impulse ids are (incarnation, n) with n counted from
   * 1 in each binding session, so every session — not just every coordinator process — needs a new incarnation,
   * or a reconnected binding's impulses would reuse ids a receiver already logged. The registry's metadata
   * update is atomic and fsynced.
   */
  private async nextIncarnation(): Promise<number> {
    const meta = await this.cfg.registry.updateMeta(this.cfg.instanceName, (m) => ({
      ...m,
      incarnation: (m.incarnation ?? 0) + 1,
    }));
    return meta.incarnation!;
  }

  private startSession(fromBinding: net.Socket, toBinding: net.Socket): void {
    // Claimed synchronously so that a second binding cannot start a session while the incarnation is written.
    this.starting = true;
    this.nextIncarnation().then(
      async (epoch) => {
        this.epoch = epoch;
        let upgrade: UpgradeTarget | undefined;
        if (this.upgradePending()) {
          try {
            upgrade = await this.prepareUpgrade();
          } catch (err) {
            this.starting = false;
            fromBinding.destroy();
            toBinding.destroy();
            this.die(err as Error);
            return;
          }
        }
        this.starting = false;
        if (this.stopped || fromBinding.destroyed || toBinding.destroyed) {
          fromBinding.destroy();
          toBinding.destroy();
          return;
        }
        this.runSession(fromBinding, toBinding, upgrade);
      },
      (err: unknown) => {
        this.starting = false;
        this.logger.error(
          { err: String(err) },
          "cannot record a new incarnation; dropping the binding connection",
        );
        fromBinding.destroy();
        toBinding.destroy();
      },
    );
  }

  private upgradePending(): boolean {
    return this.cfg.upgradeVersion !== undefined && this.cfg.upgradeVersion !== this.version;
  }

  private prepareUpgrade(): Promise<UpgradeTarget> {
    const to = this.cfg.upgradeVersion!;
    return prepareUpgrade({
      instanceName: this.cfg.instanceName,
      logDir: this.cfg.logDir,
      from: this.version,
      to,
      registry: this.cfg.registry,
      logger: this.logger,
      onCommitted: () => {
        // Later sessions (a binding that reconnects) recover from the new version's folder.
        this.version = to;
        this.instanceDir = path.join(this.cfg.logDir, `${this.cfg.instanceName}_${to}`);
      },
    });
  }

  private runSession(fromBinding: net.Socket, toBinding: net.Socket, upgrade?: UpgradeTarget): void {
    const { cfg } = this;
    this.sessions++;
    this.out("Connected!");
    const logger = this.logger.child({ session: this.sessions });
    // Active/active: digests are written through the lease's fencing, and a standby follows them (determinism/).
    const determinism =
      cfg.determinism === false
        ? undefined
        : new SessionDeterminism({
            dir: this.instanceDir,
            instanceName: cfg.instanceName,
            logger,
            ...(this.aa === undefined ? {} : { replica: { fsOps: this.aa.fsOps } }),
            onDivergence: (d) => {
              if (cfg.strictDeterminism)
                this.die(new FatalError(`--strictDeterminism: ${divergenceHeadline(d, cfg.instanceName)}`));
            },
          });
    this.determinism = determinism;
    const core = new InstanceCore({
      determinism,
      instanceName: cfg.instanceName,
      registrationId: this.registrationId,
      storage: this.aa?.storage ?? new FileInstanceStorage(this.instanceDir),
      ...(this.aa === undefined
        ? {}
        : {
            replica: this.aa.hooks,
            onPrimary: () => {
              void this.publishAddress().then(
                () =>
                  this.out(`Primary (replica ${this.cfg.replicaNum ?? 0}, lease epoch ${this.aa?.epoch})`),
                (err: unknown) =>
                  this.die(new FatalError(`cannot publish this primary's address: ${String(err)}`)),
              );
            },
          }),
      logger,
      epoch: this.epoch,
      logTriggerBytes: cfg.logTriggerSizeMB * 1024 * 1024,
      keepCheckpoints: cfg.keepCheckpoints ?? 2,
      maxOutputBytes: cfg.maxOutputBytes ?? 256 * 1024 * 1024,
      maxBindingBufferBytes: cfg.maxBindingBufferBytes ?? 16 * 1024 * 1024,
      onInboundPaused: (paused) => {
        this.inboundPaused = paused;
        for (const sock of this.inbound) {
          if (paused) sock.pause();
          else sock.resume();
        }
      },
      lookup: this.lookup,
      upgrade,
      events: bindingForwardingEvents(fromBinding),
      toBinding,
      onStopped: (reason) => {
        fromBinding.destroy();
        for (const sock of this.inbound) sock.destroy();
        if (this.core === core) this.core = undefined;
        this.inboundPaused = false;
        const waiters = this.sessionWaiters;
        this.sessionWaiters = [];
        for (const w of waiters) w(reason);
      },
    });
    this.core = core;
    core.run().catch((err: unknown) => {
      if (isFatal(err)) this.die(err as Error);
      else this.logger.warn({ err: String(err) }, "binding session ended");
    });
  }

  /** Waits until the current session stops. */
  sessionStopped(): Promise<unknown> {
    return new Promise((resolve) => this.sessionWaiters.push(resolve));
  }

  private readonly lookup: AddressLookup = async (dest) => {
    const reg = await this.cfg.registry.get(dest);
    if (reg === undefined) return { unavailable: `unknown destination "${dest}": it is not registered` };
    const meta = await this.cfg.registry.getMeta(dest);
    const addr = meta?.icAddress;
    if (addr === undefined) return { unavailable: `destination "${dest}" has never started a coordinator` };
    return { host: addr.host, port: addr.port };
  };

  // ---------------------------------------------------------------------------------------------
  // IC ↔ IC: a peer's sending half connects here.

  private onPeerSocket(s: net.Socket): void {
    s.setNoDelay(true);
    const reader = new LinkFrameReader();
    let sender: string | undefined;
    let core: InstanceCore | undefined;
    let ack: ((wm: InputWatermark) => void) | undefined;
    const refuse = (reason: string) => {
      this.logger.warn({ peer: sender, remote: s.remoteAddress }, `refusing IC connection: ${reason}`);
      s.end(encodeRefuse(reason));
      s.destroySoon();
    };
    s.on("error", () => {});
    s.on("close", () => {
      this.inbound.delete(s);
      if (sender !== undefined && ack !== undefined) core?.detachInbound(sender, ack);
    });
    s.on("data", (chunk: Buffer) => {
      let frames: ReturnType<LinkFrameReader["push"]>;
      try {
        frames = reader.push(chunk);
      } catch (err) {
        this.logger.warn(
          { peer: sender, remote: s.remoteAddress, err: String(err) },
          "malformed IC traffic, closing",
        );
        s.destroy();
        return;
      }
      for (const f of frames) {
        if (s.destroyed) return;
        if (sender === undefined) {
          if (f.type !== LinkFrameType.Hello) {
            this.logger.warn({ remote: s.remoteAddress }, "IC connection did not start with HELLO, closing");
            s.destroy();
            return;
          }
          sender = f.sender;
          void this.acceptPeer(s, f).then(
            (ok) => {
              if (!ok) return;
              core = ok.core;
              ack = ok.ack;
            },
            (err: unknown) => refuse(String(err)),
          );
          // Frames after HELLO wait for the handshake: the peer sends DATA only after WELCOME.
          continue;
        }
        if (f.type !== LinkFrameType.Data || core === undefined) {
          this.logger.warn({ peer: sender }, `unexpected IC frame ${f.type}, closing`);
          s.destroy();
          return;
        }
        if (!core.offerInbound(sender, f.entries)) {
          this.logger.error({ peer: sender }, "sequence gap from peer, resetting the link");
          s.destroy();
          return;
        }
      }
    });
  }

  private async acceptPeer(
    s: net.Socket,
    hello: { version: number; sender: string; receiver: string; senderRegistrationId: string },
  ): Promise<{ core: InstanceCore; ack: (wm: InputWatermark) => void } | undefined> {
    const refuse = (reason: string) => {
      this.logger.warn({ peer: hello.sender }, `refusing IC connection: ${reason}`);
      s.end(encodeRefuse(reason));
      return undefined;
    };
    if (hello.version !== LINK_VERSION)
      return refuse(`protocol version ${hello.version}, expected ${LINK_VERSION}`);
    if (hello.receiver !== this.cfg.instanceName) {
      return refuse(`this is "${this.cfg.instanceName}", not "${hello.receiver}"`);
    }
    const reg = await this.cfg.registry.get(hello.sender);
    if (reg === undefined) return refuse(`sender "${hello.sender}" is not registered`);
    if (reg.registrationId !== hello.senderRegistrationId) {
      return refuse(`sender "${hello.sender}" does not match its registration (re-registered?)`);
    }
    const core = this.core;
    if (core === undefined || !core.isPrimary)
      return refuse("instance is not running yet (recovering or no binding)");
    if (s.destroyed) return undefined;
    const ack = (wm: InputWatermark) => {
      if (!s.destroyed) s.write(encodeAck(wm));
    };
    const wm = core.attachInbound(hello.sender, ack);
    this.inbound.add(s);
    if (this.inboundPaused) s.pause();
    s.write(encodeWelcome(wm, this.registrationId));
    this.logger.info({ peer: hello.sender, resumeAfter: wm.fork }, "peer connected");
    return { core, ack };
  }

  // ---------------------------------------------------------------------------------------------

  stats(): Record<string, unknown> {
    return {
      instance: this.cfg.instanceName,
      pid: process.pid,
      epoch: this.epoch,
      version: this.version,
      ...(this.aa === undefined ? {} : { replica: this.cfg.replicaNum ?? 0, leaseEpoch: this.aa.epoch }),
      sessions: this.sessions,
      inboundLinks: this.inbound.size,
      session: this.core?.stats(),
      determinism: this.determinism?.stats,
      at: new Date().toISOString(),
    };
  }

  private async writeStats(): Promise<void> {
    // Replicas share the folder: each writes its own file, and the primary also the instance's.
    if (this.aa !== undefined) {
      await this.writeStatsFile(`stats.r${this.cfg.replicaNum ?? 0}.json`);
      if (this.core?.isPrimary !== true) return;
    }
    await this.writeStatsFile("stats.json");
  }

  private async writeStatsFile(name: string): Promise<void> {
    const file = path.join(this.instanceDir, name);
    try {
      await writeFile(`${file}.tmp`, `${JSON.stringify(this.stats(), null, 2)}\n`);
      await rename(`${file}.tmp`, file);
    } catch {
      // Observability must never take the coordinator down.
    }
  }

  private die(err: Error): void {
    this.logger.fatal({ err: err.message }, "fatal");
    void this.stop().finally(() => {
      if (this.cfg.onFatal !== undefined) return this.cfg.onFatal(err);
      this.out(`FATAL ERROR: ${err.message}`);
      process.exit(1);
    });
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    if (this.statsTimer !== undefined) clearInterval(this.statsTimer);
    this.core?.stop();
    this.pendingReceive?.destroy();
    this.pendingSend?.destroy();
    for (const s of this.inbound) s.destroy();
    await this.aa?.release();
    await Promise.all(this.servers.map((srv) => new Promise<void>((r) => srv.close(() => r()))));
    // An orderly stop writes the last digests too (only a crash may lose their tail).
    await this.determinism?.close();
  }

  get currentCore(): InstanceCore | undefined {
    return this.core;
  }
}

/** Errors that restarting the session cannot fix (corrupt log, unusable checkpoints, version problems). */
function isFatal(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  return (
    err.name === "LogCorruptionError" ||
    err.name === "FatalError" ||
    err.message.startsWith("no usable checkpoint")
  );
}

export { FatalError, FormatError };
