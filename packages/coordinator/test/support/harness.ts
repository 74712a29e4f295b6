// Real-process harness for coordinator tests: each instance is a coordinator process plus a raw-binding process,
// supervised (restarted when they die), and killable with SIGKILL at chosen moments.
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { createRegistration, FolderRegistry } from "../../src/index.js";

const here = path.dirname(fileURLToPath(import.meta.url));
export const RAW_BINDING = path.join(here, "raw-binding.mjs");
export const IC_BIN = path.join(here, "../../bin/ImmortalCoordinator.mjs");

// Below Linux's ephemeral range (32768–60999), so an outgoing connection's local port can never take one of
// ours; each test file that picks fixed ports has a range of its own (see tools/testkit/README.md).
let nextPort = 10000 + Math.floor(Math.random() * 600) * 10;
/** Ports for one instance: receive, send, IC. Spread out per test file so parallel files do not collide. */
export function ports(): { receivePort: number; sendPort: number; icPort: number } {
  const p = nextPort;
  nextPort += 3;
  return { receivePort: p, sendPort: p + 1, icPort: p + 2 };
}

export interface InstanceSpec {
  name: string;
  binding: Record<string, unknown>;
  logTriggerSizeMB?: number;
}

/** A deterministic PRNG (mulberry32) so kill schedules are reproducible from a seed. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

class Supervised {
  proc: ChildProcess | undefined;
  starts = 0;
  private stopped = false;
  constructor(
    readonly label: string,
    private readonly cmd: () => string[],
    private readonly env: NodeJS.ProcessEnv,
    private readonly onLine: (line: string) => void,
    private readonly restartDelayMs: number,
  ) {}
  start(): void {
    if (this.stopped) return;
    const [bin, ...args] = this.cmd();
    const p = spawn(bin!, args, { env: this.env, stdio: ["ignore", "pipe", "pipe"] });
    this.proc = p;
    this.starts++;
    let buf = "";
    p.stdout!.on("data", (d: Buffer) => {
      buf += d.toString();
      let i = buf.indexOf("\n");
      while (i >= 0) {
        this.onLine(buf.slice(0, i));
        buf = buf.slice(i + 1);
        i = buf.indexOf("\n");
      }
    });
    let err = "";
    p.stderr!.on("data", (d: Buffer) => {
      err = (err + d.toString()).slice(-20000);
    });
    p.on("exit", () => {
      this.lastStderr = err;
      if (this.proc === p) this.proc = undefined;
      setTimeout(() => this.start(), this.restartDelayMs);
    });
  }
  lastStderr = "";
  kill(): boolean {
    if (this.proc === undefined) return false;
    this.proc.kill("SIGKILL");
    return true;
  }
  async stop(): Promise<void> {
    this.stopped = true;
    const p = this.proc;
    if (p === undefined || p.exitCode !== null) return;
    await new Promise<void>((r) => {
      p.once("exit", () => r());
      p.kill("SIGKILL");
    });
  }
}

export class Cluster {
  readonly root: string;
  readonly registryDir: string;
  readonly logDir: string;
  readonly lines = new Map<string, string[]>();
  private readonly procs = new Map<string, { ic: Supervised; binding: Supervised }>();
  private waiters: Array<() => void> = [];

  constructor() {
    this.root = mkdtempSync(path.join(os.tmpdir(), "imm-cluster-"));
    this.registryDir = path.join(this.root, "registry");
    this.logDir = path.join(this.root, "logs");
  }

  async add(spec: InstanceSpec): Promise<void> {
    const p = ports();
    const registry = FolderRegistry.open({ dir: this.registryDir });
    await registry.put(
      createRegistration({
        instanceName: spec.name,
        ...p,
        logDir: this.logDir,
        logTriggerSizeMB: spec.logTriggerSizeMB ?? 1,
      }),
    );
    const env = { ...process.env, IMMORTAL_HOME: this.registryDir, IMMORTAL_LOG_LEVEL: "warn" };
    const record = (who: string) => (line: string) => {
      const key = `${spec.name}:${who}`;
      const list = this.lines.get(key) ?? [];
      list.push(line);
      this.lines.set(key, list);
      const ws = this.waiters;
      this.waiters = [];
      for (const w of ws) w();
    };
    const ic = new Supervised(
      `${spec.name} IC`,
      () => ["node", IC_BIN, "-i", spec.name],
      env,
      record("ic"),
      30,
    );
    const binding = new Supervised(
      `${spec.name} binding`,
      () => [
        "node",
        RAW_BINDING,
        JSON.stringify({
          name: spec.name,
          receivePort: p.receivePort,
          sendPort: p.sendPort,
          ...spec.binding,
        }),
      ],
      env,
      record("binding"),
      30,
    );
    this.procs.set(spec.name, { ic, binding });
  }

  start(): void {
    for (const { ic, binding } of this.procs.values()) {
      ic.start();
      binding.start();
    }
  }

  /** Kills (SIGKILL) one of the instance's processes; returns whether one was running. */
  kill(name: string, which: "ic" | "binding"): boolean {
    return this.procs.get(name)![which].kill();
  }

  output(name: string, which: "ic" | "binding"): string[] {
    return this.lines.get(`${name}:${which}`) ?? [];
  }

  stderr(name: string, which: "ic" | "binding"): string {
    return this.procs.get(name)![which].lastStderr;
  }

  starts(name: string, which: "ic" | "binding"): number {
    return this.procs.get(name)![which].starts;
  }

  /** Waits until `pred` holds (checked after every output line), or throws after `timeoutMs`. */
  async waitFor(pred: () => boolean, timeoutMs: number, what: string): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!pred()) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for ${what}`);
      await new Promise<void>((r) => {
        const t = setTimeout(r, Math.min(left, 200));
        this.waiters.push(() => {
          clearTimeout(t);
          r();
        });
      });
    }
  }

  async stop(): Promise<void> {
    await Promise.all([...this.procs.values()].flatMap(({ ic, binding }) => [binding.stop(), ic.stop()]));
  }

  cleanup(): void {
    rmSync(this.root, { recursive: true, force: true });
  }
}
