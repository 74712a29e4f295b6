// The latency and concurrency workloads, written once over an `op(caller)` that performs one durable call and
// resolves when its result is back. The same code drives Immortal and Restate, so the two are measured alike.

/** Percentiles of `xs` (ms), nearest rank. */
export function summarize(xs) {
  const s = Float64Array.from(xs).sort();
  const at = (p) => s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))];
  let sum = 0;
  for (const x of s) sum += x;
  return {
    n: s.length,
    p50: at(50),
    p90: at(90),
    p99: at(99),
    max: s[s.length - 1],
    mean: sum / s.length,
  };
}

/** Sequential calls: `warmup` unmeasured, then `n` measured one at a time. */
export async function latency(op, { warmup, n, deadlineMs = Number.POSITIVE_INFINITY }) {
  for (let i = 0; i < warmup; i++) await op(0);
  const xs = [];
  const end = performance.now() + deadlineMs;
  for (let i = 0; i < n && performance.now() < end; i++) {
    const t0 = performance.now();
    await op(0);
    xs.push(performance.now() - t0);
  }
  return summarize(xs);
}

/**
 * `callers` concurrent loops, each making one call at a time, for `seconds` after a short warm-up. Returns
 * completed operations per second over the measured window (calls still in flight at its end are awaited
 * but not counted).
 */
export async function concurrency(op, { callers, seconds, warmupSeconds = 0.5 }) {
  let measuring = false;
  let stop = false;
  let done = 0;
  const loop = async (c) => {
    while (!stop) {
      await op(c);
      if (measuring && !stop) done++;
    }
  };
  const loops = Array.from({ length: callers }, (_, c) => loop(c));
  await sleep(warmupSeconds * 1000);
  measuring = true;
  const t0 = performance.now();
  await sleep(seconds * 1000);
  stop = true;
  const elapsed = (performance.now() - t0) / 1000;
  await Promise.all(loops);
  return { callers, ops: done, seconds: elapsed, opsPerSecond: done / elapsed };
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
