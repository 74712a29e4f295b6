// Child processes of the benchmark suite: every one is tracked, and all of them are killed when the suite
// exits, fails or is interrupted, so a run never leaves coordinators, bindings or a Restate server behind.
import { spawn } from "node:child_process";

const children = new Set();

/** Kills every child still running (SIGKILL: they hold no state the suite needs). */
export function killAll() {
  for (const c of children) {
    if (c.exitCode === null && c.signalCode === null) {
      try {
        c.kill("SIGKILL");
      } catch {
        // already gone
      }
    }
  }
  children.clear();
}

/**
 * Stops every child: SIGTERM first (so that a process run with --cpu-prof writes its profile), SIGKILL for any
 * still running after `graceMs`.
 */
export async function stopAll(graceMs = 5000) {
  const running = [...children].filter((c) => c.exitCode === null && c.signalCode === null);
  const exits = running.map((c) => new Promise((r) => (c.exitCode !== null ? r() : c.once("exit", r))));
  for (const c of running) c.kill("SIGTERM");
  let timer;
  await Promise.race([Promise.all(exits), new Promise((r) => (timer = setTimeout(r, graceMs)))]);
  clearTimeout(timer);
  killAll();
}

let hooked = false;
function hookExit() {
  if (hooked) return;
  hooked = true;
  process.on("exit", killAll);
  for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"]) {
    process.on(sig, () => {
      killAll();
      process.exit(130);
    });
  }
}

/**
 * A tracked child. `lines(fn)` sees each stdout/stderr line; `waitFor(re, ms)` resolves with the first match
 * (also among lines already seen) or rejects on timeout or exit, with the child's output tail in the error.
 */
export function start(name, cmd, args, opts = {}) {
  hookExit();
  const child = spawn(cmd, args, { stdio: ["ignore", "pipe", "pipe"], ...opts });
  children.add(child);
  child.on("exit", () => children.delete(child));
  const seen = [];
  const listeners = new Set();
  const tail = [];
  const feed = (stream, label) => {
    let buf = "";
    stream.setEncoding("utf8");
    stream.on("data", (d) => {
      buf += d;
      let i = buf.indexOf("\n");
      while (i >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        const entry = { line, at: Date.now(), stream: label };
        if (seen.length < 20000) seen.push(entry);
        tail.push(`${label}: ${line}`);
        if (tail.length > 30) tail.shift();
        for (const l of listeners) l(entry);
        i = buf.indexOf("\n");
      }
    });
  };
  feed(child.stdout, "out");
  feed(child.stderr, "err");
  const exited = new Promise((resolve) => child.on("exit", (code, signal) => resolve({ code, signal })));
  const handle = {
    name,
    child,
    exited,
    seen,
    tail: () => tail.join("\n"),
    onLine(fn) {
      listeners.add(fn);
      return () => listeners.delete(fn);
    },
    waitFor(re, ms, what = String(re)) {
      const hit = seen.find((e) => re.test(e.line));
      if (hit) return Promise.resolve(hit);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          off();
          reject(new Error(`${name}: no ${what} within ${ms} ms\n${handle.tail()}`));
        }, ms);
        const off = handle.onLine((e) => {
          if (re.test(e.line)) {
            clearTimeout(timer);
            off();
            resolve(e);
          }
        });
        exited.then(({ code, signal }) => {
          clearTimeout(timer);
          off();
          reject(new Error(`${name} exited (${code ?? signal}) before ${what}\n${handle.tail()}`));
        });
      });
    },
    /** Sends `signal`; SIGKILL follows if the child is still there after `graceMs`. */
    async kill(signal = "SIGKILL", graceMs = 5000) {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      let timer;
      await Promise.race([
        exited,
        new Promise((r) => {
          timer = setTimeout(r, graceMs);
        }),
      ]);
      clearTimeout(timer);
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
      await exited;
    },
  };
  return handle;
}

// One port picker for the suite and the CLI (distinct within this process).
export { freePort } from "@immortal/cli";

/** Rejects after `ms` with a clear message: every phase of the suite is bounded. */
export function withTimeout(promise, ms, what) {
  let timer;
  return Promise.race([
    promise,
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what} did not finish within ${ms / 1000} s`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}
