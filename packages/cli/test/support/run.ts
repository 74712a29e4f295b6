// One real `node` process run to a condition or to its exit, with its stdout and stderr lines: for tests that
// compare what a live run printed with what a later run (a replay, a debug session) prints.
import { type ChildProcess, spawn } from "node:child_process";
import { collectLines } from "../../../../tools/testkit/src/processes.js";

export interface Finished {
  readonly code: number | null;
  readonly stdout: string[];
  readonly stderr: string[];
}

const children = new Set<ChildProcess>();

/** SIGKILLs every process started here that is still running (call it in afterEach). */
export function killRunning(): void {
  for (const c of children) c.kill("SIGKILL");
  children.clear();
}

/**
 * Runs `node ...args`. Without `until` it waits for the process to exit; with it, it waits until `until(stdout)`
 * holds, sends SIGTERM (an orderly stop), and waits for the exit. Fails after `ms` with what it waited for.
 */
export function runNode(
  args: string[],
  o: {
    env?: NodeJS.ProcessEnv;
    cwd?: string;
    until?: (stdout: string[]) => boolean;
    /** What `until` sends (default SIGTERM, an orderly stop; SIGKILL for a crash). */
    signal?: NodeJS.Signals;
    ms: number;
    what: string;
  },
): Promise<Finished> {
  const stdout: string[] = [];
  const stderr: string[] = [];
  const p = spawn(process.execPath, args, {
    env: o.env ?? process.env,
    cwd: o.cwd,
    stdio: ["ignore", "pipe", "pipe"],
  });
  children.add(p);
  let termed = false;
  const check = () => {
    if (!termed && o.until?.(stdout)) {
      termed = true;
      p.kill(o.signal ?? "SIGTERM");
    }
  };
  collectLines(p.stdout!, stdout, check);
  collectLines(p.stderr!, stderr);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      p.kill("SIGKILL");
      reject(
        new Error(
          `timed out waiting for ${o.what}; stdout: ${stdout.slice(-5).join(" | ")}; stderr: ${stderr.slice(-5).join(" | ")}`,
        ),
      );
    }, o.ms);
    p.on("close", (code) => {
      clearTimeout(timer);
      children.delete(p);
      resolve({ code, stdout, stderr });
    });
  });
}
