// The log lease, fencing and seals on real files (and, for the stalled holder, a real child process stopped
// with SIGSTOP). Pass conditions: exactly one of many racing replicas gets each epoch; a renewed lease is
// never taken; a holder that stops renewing is replaced and, resumed, reports the loss; fenced storage refuses
// every write once a newer epoch exists or when the lease was never held; a sealed log is read only up to
// its seal.
import { spawn } from "node:child_process";
import { appendFileSync, readdirSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { fencedFsOps, writeSeal } from "../../src/replication/fencing.js";
import { followLog } from "../../src/replication/follower.js";
import { FileLogLease, leaseTiming } from "../../src/replication/lease.js";
import { FileInstanceStorage, nodeFsOps } from "../../src/storage/index.js";
import { COMMITTER, tempDir } from "../storage/helpers.js";

const here = path.dirname(fileURLToPath(import.meta.url));
const timing = leaseTiming(200);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls `tryAcquire` until it succeeds (or `ms` passes); returns the epoch. */
async function acquire(lease: FileLogLease, ms = 10_000): Promise<number | undefined> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    const e = await lease.tryAcquire();
    if (e !== undefined) return e;
    await sleep(10);
  }
  return undefined;
}

describe("FileLogLease", () => {
  it("racing replicas: exactly one holds each epoch", async () => {
    const dir = await tempDir();
    const leases = Array.from({ length: 6 }, (_, i) => new FileLogLease(dir, `r${i}`, timing));
    try {
      let holders = leases;
      for (let epoch = 1; holders.length > 2; epoch++) {
        // Everyone who is not holding tries until someone wins; the released lease is free at once.
        const results = await Promise.all(holders.map((l) => acquire(l, 1000)));
        const won = results.filter((r): r is number => r !== undefined);
        // Epochs are never shared. Under heavy load a winner's renewal can be late and a later epoch taken:
        // then the earlier winner no longer holds it. Either way exactly one replica holds the lease now.
        expect(new Set(won).size).toBe(won.length);
        expect(Math.min(...won)).toBe(epoch);
        const valid = holders.filter((l) => {
          try {
            l.assertHeld("check");
            return true;
          } catch {
            return false;
          }
        });
        expect(valid.length).toBe(1);
        expect(valid[0]!.epoch).toBe(Math.max(...won));
        epoch = Math.max(...won);
        await valid[0]!.release();
        const winners = holders.filter((l) => l.epoch !== undefined);
        for (const w of winners) await w.release();
        holders = holders.filter((l) => l.epoch === undefined);
      }
    } finally {
      for (const l of leases) await l.release();
    }
  });

  it("a renewed lease is never taken, even by a replica polling for many lease periods", async () => {
    const dir = await tempDir();
    const a = new FileLogLease(dir, "a", timing);
    const b = new FileLogLease(dir, "b", timing);
    try {
      expect(await a.tryAcquire()).toBe(1);
      expect(await acquire(b, 5 * timing.ttlMs)).toBeUndefined();
      expect(() => a.assertHeld("check")).not.toThrow();
    } finally {
      await a.release();
      await b.release();
    }
  });

  it("a holder stopped past its lease is replaced, and reports the loss when resumed", async () => {
    const dir = await tempDir();
    const child = spawn(process.execPath, [path.join(here, "lease-holder.mjs"), dir], {
      stdio: ["ignore", "pipe", "inherit"],
    });
    let out = "";
    child.stdout!.on("data", (d: Buffer) => {
      out += d;
    });
    try {
      const deadline = Date.now() + 20_000;
      while (!out.includes("HELD") && Date.now() < deadline) await sleep(10);
      expect(out).toContain("HELD 1");
      child.kill("SIGSTOP");
      const b = new FileLogLease(dir, "b", timing);
      expect(await acquire(b)).toBe(2);
      child.kill("SIGCONT");
      while (!out.includes("LOST") && Date.now() < deadline) await sleep(10);
      expect(out).toMatch(/LOST .*lease/);
      expect(() => b.assertHeld("check")).not.toThrow();
      await b.release();
    } finally {
      child.kill("SIGKILL");
    }
  }, 30_000);

  it("fenced storage refuses to write once a newer epoch exists, and for a replica that never held it", async () => {
    const dir = await tempDir();
    const a = new FileLogLease(dir, "a", timing);
    const standby = new FileLogLease(dir, "s", timing);
    try {
      expect(await a.tryAcquire()).toBe(1);
      const storage = new FileInstanceStorage(dir, { fsOps: fencedFsOps(nodeFsOps, (w) => a.assertHeld(w)) });
      const w = await storage.openLogForAppend(1);
      await w.append({
        committerId: COMMITTER,
        sequence: 0,
        payload: Buffer.from("ok"),
        meta: Buffer.alloc(0),
      });
      // A newer epoch appears (another replica took over): the very next append fails, nothing is written.
      appendFileSync(path.join(dir, "lease.2"), "");
      const size = w.size;
      await expect(
        w.append({
          committerId: COMMITTER,
          sequence: 1,
          payload: Buffer.from("late"),
          meta: Buffer.alloc(0),
        }),
      ).rejects.toThrow(/epoch 2/);
      expect(w.size).toBe(size);
      await w.close();
      const fenced = new FileInstanceStorage(dir, {
        fsOps: fencedFsOps(nodeFsOps, (x) => standby.assertHeld(x)),
      });
      await expect(fenced.openLogForAppend(2)).rejects.toThrow(/does not hold the lease/);
      expect(readdirSync(dir).includes("serverlog2")).toBe(false);
    } finally {
      await a.release();
    }
  });
});

describe("seals", () => {
  it("a sealed log is read only up to its seal, by a follower as by recovery", async () => {
    const dir = await tempDir();
    const storage = new FileInstanceStorage(dir);
    const w = await storage.openLogForAppend(1);
    const ends: number[] = [];
    for (let seq = 0; seq < 3; seq++) {
      await w.append({
        committerId: COMMITTER,
        sequence: seq,
        payload: Buffer.from(`u${seq}`),
        meta: Buffer.alloc(0),
      });
      ends.push(w.size);
    }
    await w.close();
    await writeSeal(nodeFsOps, dir, 1, ends[1]!);
    const seen: number[] = [];
    const r = await followLog({
      storage,
      committerId: COMMITTER,
      firstLog: 1,
      nextSequence: 0,
      promoted: async () => true,
      pollMs: 5,
      stopped: () => false,
      onUnit: async (u) => {
        seen.push(u.sequence);
      },
    });
    expect(seen).toEqual([0, 1]);
    expect(r).toMatchObject({ lastLog: 1, endOffset: ends[1], nextSequence: 2 });
    const scanned = await storage.scanLog(1, { isLastLog: true, repair: false, endOffset: ends[1] });
    expect(scanned.units.map((u) => u.sequence)).toEqual([0, 1]);
  });
});
