// Shared by the apps' and the cli's process tests: supervised real processes (restarted when they die, stdout
// collected), a seeded PRNG for reproducible kill schedules, a line collector, a JSON-file reader and a
// polling wait.
import { type ChildProcess, spawn } from "node:child_process";
import { openSync, readFileSync } from "node:fs";

/** mulberry32: a small seeded PRNG, so a kill schedule is reproducible from its seed. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), a | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface Supervised {
  /** SIGKILLs the process if it is running (it is restarted); returns whether one was. */
  kill(): boolean;
  /** Stops supervising and kills the process. */
  stop(): void;
  /** How many times the process was started. */
  starts(): number;
  /** Sends `sig` (e.g. SIGSTOP, SIGCONT) to the running process; returns whether one was running. */
  signal(sig: NodeJS.Signals): boolean;
}

const running = new Set<Supervised>();

/**
 * Runs `node ...args`, restarting it 50 ms after every exit; its stdout lines are appended to `lines`, and its
 * stderr to the file `stderr` when given (for failure reports).
 */
export function supervise(
  args: string[],
  env: NodeJS.ProcessEnv,
  lines: string[],
  stderr?: string,
): Supervised {
  let proc: ChildProcess | undefined;
  let stopped = false;
  let starts = 0;
  const start = () => {
    if (stopped) return;
    starts++;
    const err = stderr === undefined ? "ignore" : openSync(stderr, "a");
    const p = spawn(process.execPath, args, { env, stdio: ["ignore", "pipe", err] });
    proc = p;
    collectLines(p.stdout!, lines);
    p.on("exit", () => {
      if (proc === p) proc = undefined;
      setTimeout(start, 50);
    });
  };
  start();
  const handle: Supervised = {
    // A process already SIGKILLed whose exit is not yet seen is not running: a second kill is no new fault.
    kill: () => (proc === undefined || proc.killed ? false : proc.kill("SIGKILL")),
    stop: () => {
      stopped = true;
      running.delete(handle);
      proc?.kill("SIGKILL");
    },
    starts: () => starts,
    signal: (sig) => (proc === undefined ? false : proc.kill(sig)),
  };
  running.add(handle);
  return handle;
}

/** Stops every supervised process (call it in afterEach). */
export function stopAll(): void {
  for (const h of [...running]) h.stop();
}

/**
 * Appends each complete line of `stream` to `into` as it arrives (and the unterminated last one at its end),
 * calling `onLines` after each chunk that completed at least one.
 */
export function collectLines(stream: NodeJS.ReadableStream, into: string[], onLines?: () => void): void {
  let buf = "";
  stream.on("data", (d: Buffer) => {
    buf += d;
    const parts = buf.split("\n");
    buf = parts.pop()!;
    into.push(...parts);
    if (parts.length > 0) onLines?.();
  });
  stream.on("end", () => {
    if (buf !== "") into.push(buf);
  });
}

/** A JSON file's value, or undefined while it is missing or half written (e.g. a coordinator's stats file). */
export function readJson(file: string): Record<string, unknown> | undefined {
  try {
    return JSON.parse(readFileSync(file, "utf8")) as Record<string, unknown>;
  } catch {
    return undefined;
  }
}

/** Polls `pred` every 20 ms; throws after `ms` with what it was waiting for. */
export async function until(pred: () => boolean, what: string, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
