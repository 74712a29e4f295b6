// Real processes for an app's instances: per instance one `immortal coordinator` and one `immortal run` (its
// binding), each a separate child process that can be SIGKILLed and is restarted when it dies. Their stdout lines
// are kept in memory (what the checks read); stdout and stderr are also appended to one file per process, so a
// violation can be investigated afterwards.
import { type ChildProcess, spawn } from "node:child_process";
import { appendFileSync, mkdirSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { freePort } from "@immortal/cli";
import { createRegistration, FolderRegistry } from "@immortal/coordinator";

const require = createRequire(import.meta.url);

/** The `immortal` command of packages/cli (built). */
export const IMMORTAL = path.join(
  path.dirname(require.resolve("@immortal/cli/package.json")),
  "bin/immortal.mjs",
);
/** The built entry modules of the sample apps. */
export const APPS = {
  pti: require.resolve("@immortal/app-pti"),
  bank: require.resolve("@immortal/app-bank"),
} as const;

/** Every child running now: killed when this process exits, so none outlives the harness. */
const live = new Set<ChildProcess>();
process.once("exit", () => {
  for (const c of live) c.kill("SIGKILL");
});

export type ProcKind = "coordinator" | "binding";

export interface ProcOptions {
  readonly label: string;
  readonly kind: ProcKind;
  readonly instance: string;
  readonly args: readonly string[];
  readonly env: NodeJS.ProcessEnv;
  /** Where stdout and stderr are appended. */
  readonly logFile: string;
  /** Restart the process this long after it exits (undefined: never restart). */
  readonly restartDelayMs?: number;
}

/** A child `node` process, optionally restarted whenever it exits; its stdout lines are collected. */
export class Proc {
  readonly label: string;
  readonly kind: ProcKind;
  readonly instance: string;
  /** Every stdout line of every run, in order. */
  readonly lines: string[] = [];
  /** Index into `lines` where each run's output starts. */
  readonly runStarts: number[] = [];
  /** How each run ended. */
  readonly exits: Array<{ code: number | null; signal: NodeJS.Signals | null }> = [];
  /** Largest peak RSS (VmHWM, kB) seen over all runs; sampled while running when `sampleRss` is on. */
  peakRssKb = 0;
  private child: ChildProcess | undefined;
  private restartDelayMs: number | undefined;
  private stopped = true;
  private restartTimer: NodeJS.Timeout | undefined;
  private rssTimer: NodeJS.Timeout | undefined;
  private readonly listeners = new Set<() => void>();

  constructor(private readonly o: ProcOptions) {
    this.label = o.label;
    this.kind = o.kind;
    this.instance = o.instance;
    this.restartDelayMs = o.restartDelayMs;
  }

  get running(): boolean {
    return this.child !== undefined;
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  /** How many times the process was started. */
  get starts(): number {
    return this.runStarts.length;
  }

  /** Starts the process (and supervision) if it is not running. */
  start(): void {
    this.stopped = false;
    if (this.child !== undefined) return;
    if (this.restartTimer !== undefined) clearTimeout(this.restartTimer);
    this.restartTimer = undefined;
    this.runStarts.push(this.lines.length);
    appendFileSync(this.o.logFile, `\n==== start ${this.starts} at ${new Date().toISOString()}\n`);
    const p = spawn(process.execPath, [...this.o.args], {
      env: this.o.env,
      stdio: ["ignore", "pipe", "pipe"],
    });
    this.child = p;
    live.add(p);
    for (const l of this.listeners) l();
    let buf = "";
    p.stdout!.on("data", (d: Buffer) => {
      appendFileSync(this.o.logFile, d);
      buf += d;
      const parts = buf.split("\n");
      buf = parts.pop()!;
      if (parts.length > 0) {
        this.lines.push(...parts);
        for (const l of this.listeners) l();
      }
    });
    p.stderr!.on("data", (d: Buffer) => appendFileSync(this.o.logFile, d));
    p.on("exit", (code, signal) => {
      live.delete(p);
      if (buf !== "") this.lines.push(buf);
      buf = "";
      this.sampleRss(p.pid);
      this.exits.push({ code, signal });
      appendFileSync(this.o.logFile, `\n==== exit code ${code} signal ${signal}\n`);
      if (this.child === p) this.child = undefined;
      for (const l of this.listeners) l();
      if (!this.stopped && this.restartDelayMs !== undefined)
        this.restartTimer = setTimeout(() => {
          this.restartTimer = undefined;
          if (!this.stopped) this.start();
        }, this.restartDelayMs);
    });
  }

  /** SIGKILLs the process if it is running (supervision restarts it); returns whether one was running. */
  kill(): boolean {
    const p = this.child;
    // A process already SIGKILLed but not yet reaped (its exit event still pending) is not running: killing it
    // again would count as a second fault that never happened.
    if (p === undefined || p.killed || p.exitCode !== null || p.signalCode !== null) return false;
    this.sampleRss(p.pid);
    return p.kill("SIGKILL");
  }

  /** Stops supervising, SIGKILLs the process, and waits until it has exited. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.restartTimer !== undefined) clearTimeout(this.restartTimer);
    this.restartTimer = undefined;
    const p = this.child;
    if (p === undefined) return;
    const exited = new Promise<void>((r) => p.once("exit", () => r()));
    this.sampleRss(p.pid);
    p.kill("SIGKILL");
    await exited;
  }

  /** Turns restarting after an exit on (with a delay) or off. */
  setRestart(delayMs: number | undefined): void {
    this.restartDelayMs = delayMs;
  }

  /** Samples the peak RSS every `everyMs` while running (Linux: /proc/<pid>/status VmHWM). */
  trackRss(everyMs = 50): void {
    this.rssTimer ??= setInterval(() => this.sampleRss(this.child?.pid), everyMs);
    this.rssTimer.unref();
  }

  /** Resolves once the process has been started again after run number `afterStarts` (supervision restarted it). */
  waitRestarted(afterStarts: number, ms = 30_000): Promise<void> {
    return this.waitFor(() => this.starts > afterStarts && this.running, `restart ${afterStarts + 1}`, ms);
  }

  /** The stdout lines of the current (or last) run. */
  currentRunLines(): string[] {
    return this.lines.slice(this.runStarts.at(-1) ?? 0);
  }

  /** Resolves when `pred` holds (checked on every start, output line and exit); rejects after `ms`. */
  waitFor(pred: () => boolean, what: string, ms: number): Promise<void> {
    if (pred()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const check = () => {
        if (!pred()) return;
        cleanup();
        resolve();
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(
          new Error(`${this.label}: timed out after ${ms} ms waiting for ${what}; see ${this.o.logFile}`),
        );
      }, ms);
      const cleanup = () => {
        clearTimeout(timer);
        this.listeners.delete(check);
      };
      this.listeners.add(check);
    });
  }

  /** The whole log file of this process (stdout and stderr of every run). */
  log(): string {
    try {
      return readFileSync(this.o.logFile, "utf8");
    } catch {
      return "";
    }
  }

  dispose(): void {
    if (this.rssTimer !== undefined) clearInterval(this.rssTimer);
    this.rssTimer = undefined;
  }

  private sampleRss(pid: number | undefined): void {
    if (pid === undefined) return;
    try {
      const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
      if (m !== null) this.peakRssKb = Math.max(this.peakRssKb, Number(m[1]));
    } catch {
      // The process is gone (or not Linux): nothing to sample.
    }
  }
}

export interface ClusterOptions {
  /** Folder for the registry, the logs and the process output files (created). */
  readonly root: string;
  /** The app module `immortal run` loads. */
  readonly entry: string;
  /** Instance names; each gets its own coordinator and binding process. */
  readonly instances: readonly string[];
  /** The app's options (environment variables), added to this process's environment. */
  readonly env?: Record<string, string>;
  /** Registered log trigger size (MB): a checkpoint is taken each time the log grows past it. */
  readonly logTriggerSizeMB?: number;
  /** Log folder (default `<root>/logs`). */
  readonly logDir?: string;
  /** Restart processes this long after they exit (default 50 ms; undefined in `restart: false` mode). */
  readonly restartDelayMs?: number;
  /** Do not restart processes that exit. */
  readonly noRestart?: boolean;
}

export interface InstanceProcs {
  readonly name: string;
  readonly coordinator: Proc;
  readonly binding: Proc;
  readonly ports: { receive: number; send: number; ic: number };
}

/** The instances of one app, registered in their own registry, with a coordinator and a binding process each. */
export class Cluster {
  readonly instances = new Map<string, InstanceProcs>();
  readonly logDir: string;
  readonly env: NodeJS.ProcessEnv;

  private constructor(
    readonly root: string,
    logDir: string,
    env: NodeJS.ProcessEnv,
  ) {
    this.logDir = logDir;
    this.env = env;
  }

  static async create(o: ClusterOptions): Promise<Cluster> {
    mkdirSync(o.root, { recursive: true });
    const registryDir = path.join(o.root, "registry");
    const logDir = o.logDir ?? path.join(o.root, "logs");
    const outDir = path.join(o.root, "out");
    mkdirSync(outDir, { recursive: true });
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      IMMORTAL_HOME: registryDir,
      IMMORTAL_LOG_LEVEL: process.env.IMMORTAL_LOG_LEVEL ?? "info",
      ...o.env,
    };
    const c = new Cluster(o.root, logDir, env);
    const registry = FolderRegistry.open({ dir: registryDir });
    const restartDelayMs = o.noRestart === true ? undefined : (o.restartDelayMs ?? 50);
    for (const name of o.instances) {
      const ports = { receive: await freePort(), send: await freePort(), ic: await freePort() };
      await registry.put(
        createRegistration({
          instanceName: name,
          receivePort: ports.receive,
          sendPort: ports.send,
          icPort: ports.ic,
          logDir,
          ...(o.logTriggerSizeMB === undefined ? {} : { logTriggerSizeMB: o.logTriggerSizeMB }),
        }),
      );
      const proc = (kind: ProcKind, args: string[]) =>
        new Proc({
          label: `${name} ${kind}`,
          kind,
          instance: name,
          args: [IMMORTAL, ...args],
          env,
          logFile: path.join(outDir, `${name}.${kind}.log`),
          ...(restartDelayMs === undefined ? {} : { restartDelayMs }),
        });
      c.instances.set(name, {
        name,
        ports,
        coordinator: proc("coordinator", ["coordinator", "-i", name]),
        binding: proc("binding", ["run", o.entry, "--instance", name]),
      });
    }
    return c;
  }

  get(name: string): InstanceProcs {
    const i = this.instances.get(name);
    if (i === undefined) throw new Error(`no instance ${name} in this cluster`);
    return i;
  }

  /** Every process, coordinators first. */
  procs(): Proc[] {
    const all = [...this.instances.values()];
    return [...all.map((i) => i.coordinator), ...all.map((i) => i.binding)];
  }

  /** Starts every coordinator, then every binding. */
  startAll(): void {
    for (const p of this.procs()) p.start();
  }

  /** Starts an instance's coordinator and binding. */
  startInstance(name: string): void {
    const i = this.get(name);
    i.coordinator.start();
    i.binding.start();
  }

  /** SIGKILLs an instance's coordinator and binding and waits for both to exit (no restart). */
  async stopInstance(name: string): Promise<void> {
    const i = this.get(name);
    await Promise.all([i.coordinator.stop(), i.binding.stop()]);
  }

  async stopAll(): Promise<void> {
    await Promise.all(this.procs().map((p) => p.stop()));
    for (const p of this.procs()) p.dispose();
  }

  /** The stdout lines of every binding (the app's output), in arrival order per process. */
  bindingLines(): string[] {
    return [...this.instances.values()].flatMap((i) => i.binding.lines);
  }
}
