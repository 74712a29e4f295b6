// The suite in its tiny configuration, end to end: every phase runs against real coordinators and bindings and
// writes its JSON. No timing is asserted (CI machines are noisy): only that the figures exist and are positive.
import { execFile } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { afterAll, describe, expect, it } from "vitest";

const run = promisify(execFile);
const SYSTEM = path.resolve(__dirname, "../src/system.mjs");
const out = mkdtempSync(path.join(os.tmpdir(), "imm-bench-test-"));
afterAll(() => rmSync(out, { recursive: true, force: true }));

const positive = (x: unknown) => typeof x === "number" && Number.isFinite(x) && x > 0;

describe("pnpm bench:system --quick", () => {
  it("runs every phase and writes a results JSON with positive figures", { timeout: 240_000 }, async () => {
    const { stdout } = await run(process.execPath, [SYSTEM, "--quick", "--out", out], {
      timeout: 220_000,
      maxBuffer: 16 << 20,
    });
    expect(stdout).toContain("PTI size");
    const files = readdirSync(out).filter((f) => f.endsWith(".json"));
    expect(files).toHaveLength(1);
    const r = JSON.parse(readFileSync(path.join(out, files[0]!), "utf8"));

    for (const k of ["cpu", "cores", "memoryGiB", "node", "kernel", "date"])
      expect(r.machine[k]).toBeTruthy();
    const b = r.baselines;
    for (const x of [
      b.diskBytesPerSecond,
      b.diskBytesPerSecondAfter,
      b.fdatasyncMs,
      b.loopbackBytesPerSecond,
      b.loopbackRttMs,
      b.durableRoundTripFloorMs.p50,
    ])
      expect(positive(x)).toBe(true);

    // PTI: 64 KiB halving to 16 B is 13 rounds, each with positive rates; the server saw every call in order.
    expect(r.pti.rounds.map((x: { size: number }) => x.size)).toEqual(
      Array.from({ length: 13 }, (_, i) => 65536 / 2 ** i),
    );
    for (const x of r.pti.rounds) {
      expect(positive(x.messagesPerSecond)).toBe(true);
      expect(positive(x.mibPerSecond)).toBe(true);
      expect(positive(x.ratioToDisk)).toBe(true);
    }
    expect(r.pti.result).toMatchObject({ duplicates: 0, gaps: 0 });

    expect(r.pti64k.warmup.size).toBe(65536);
    expect(positive(r.pti64k.measured.messagesPerSecond)).toBe(true);
    expect(positive(r.pti64k.measured.ratioToDisk)).toBe(true);

    // PTI 64 B, warm: five measured rounds after the warm-up; the target is their median.
    expect(r.pti64b.warmup.size).toBe(64);
    expect(r.pti64b.measured).toHaveLength(5);
    const rates = r.pti64b.measured
      .map((x: { messagesPerSecond: number }) => x.messagesPerSecond)
      .sort((a: number, b: number) => a - b);
    expect(rates.every(positive)).toBe(true);
    expect(r.pti64b.medianMessagesPerSecond).toBe(rates[2]);
    expect(r.targets.pti64BMessagesPerSecond.value).toBe(rates[2]);

    const l = r.roundTrip.latency;
    expect(l.n).toBe(200);
    for (const k of ["p50", "p90", "p99", "max"]) expect(positive(l[k])).toBe(true);
    expect(l.p50).toBeLessThanOrEqual(l.max);
    expect(r.roundTrip.concurrency.map((c: { callers: number }) => c.callers)).toEqual([1, 16]);
    for (const c of r.roundTrip.concurrency) expect(positive(c.opsPerSecond)).toBe(true);

    expect(r.recovery.replayedBytes).toBeGreaterThanOrEqual(4e6);
    expect(positive(r.recovery.replayMBps)).toBe(true);
    expect(r.failover).toBeTruthy();
  });
});
