// A standby's determinism check (DigestFollower) over real digest files that grow and rotate while it reads
// them, written by the live recorder. Pass conditions: a fork regenerated before its digest is on disk is held,
// never reported without a record, and checked once the digest arrives (divergent or not, with the live run's
// input record); a fork whose digest can no longer come (a later fork to its destination was recorded, or the
// replay ended) counts as unchecked; digests in a rotated-to file are read after the rest of the previous one.
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { encodeMessage } from "@immortal/wire";
import pino from "pino";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { DigestFollower } from "../../src/determinism/follow.js";
import { DeterminismChecker, DigestRecorder, type Divergence } from "../../src/determinism/index.js";
import { fencedFsOps } from "../../src/replication/fencing.js";
import { nodeFsOps } from "../../src/storage/index.js";

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "immortal-follow-"));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const frame = (methodId: number, args: number[]) =>
  encodeMessage({ type: 0, reserved: 0, methodId, rpcType: 1, args: Uint8Array.from(args) });
const log = pino({ level: "silent" });

/** Writes digests as a live primary does; `close` makes them visible at once (instead of within 100 ms). */
async function record(
  outputs: Array<[string, number, Uint8Array, number]>,
  logNumber: number,
): Promise<void> {
  const r = new DigestRecorder(dir, log, 8);
  for (const [dest, fork, f, seq] of outputs) r.record(dest, fork, f, seq, logNumber);
  await r.close();
}

function follower(firstLog = 1, generated = new Map<string, number>()) {
  const reports: Divergence[] = [];
  const checker = DeterminismChecker.create(generated);
  const f = new DigestFollower(
    dir,
    firstLog,
    checker,
    (d) => reports.push(d),
    () => {},
  );
  return { f, checker, reports };
}

describe("DigestFollower", () => {
  it("holds a fork regenerated before its digest, then checks it against the digest when it arrives", async () => {
    const { f, checker, reports } = follower();
    await f.poll(); // nothing on disk yet
    f.output("peer", 1, frame(7, [1, 2, 3]), 4);
    f.output("peer", 2, frame(7, [9, 9, 9, 9, 9, 9, 9, 9, 9, 9]), 5);
    await f.poll();
    expect(f.pendingOutputs).toBe(2);
    expect(checker.stats).toMatchObject({ checkedOutputs: 0, uncheckedOutputs: 0, divergences: 0 });
    expect(reports).toEqual([]);
    // The live run's digests land later: fork 1 the same, fork 2 with other bytes (a random argument).
    await record(
      [
        ["peer", 1, frame(7, [1, 2, 3]), 3],
        ["peer", 2, frame(7, [9, 9, 9, 9, 9, 1, 9, 9, 9, 9]), 4],
      ],
      1,
    );
    await f.poll();
    expect(f.pendingOutputs).toBe(0);
    expect(checker.stats).toMatchObject({ checkedOutputs: 2, uncheckedOutputs: 0, divergences: 1 });
    expect(reports).toHaveLength(1);
    expect(reports[0]).toMatchObject({ kind: "differs", destination: "peer", fork: 2, inputSequence: 4 });
  });

  it("counts a held fork unchecked once a later fork to its destination is recorded, or when the replay ends", async () => {
    const { f, checker, reports } = follower();
    f.output("peer", 1, frame(7, [1]), 1); // its digest was lost (say, in the primary's crash)
    f.output("other", 1, frame(8, [1]), 1); // its digest never comes
    // A later fork to "peer" arrives in log 2's digest file: peer's fork 1 will never be recorded.
    await record([["peer", 2, frame(7, [2]), 2]], 2);
    await f.poll();
    expect(f.pendingOutputs).toBe(1);
    expect(checker.stats).toMatchObject({ checkedOutputs: 0, uncheckedOutputs: 1 });
    f.output("peer", 2, frame(7, [2]), 2); // recorded already: checked at once
    expect(checker.stats).toMatchObject({ checkedOutputs: 1, divergences: 0 });
    await f.settle();
    expect(f.pendingOutputs).toBe(0);
    expect(checker.stats).toMatchObject({ checkedOutputs: 1, uncheckedOutputs: 2, divergences: 0 });
    expect(reports).toEqual([]);
  });

  it("reads a digest file to its end before the next one, skips what the checkpoint holds and the new primary's file", async () => {
    // Follows from checkpoint 2 (so digests of log 1 on), whose state had generated peer's fork 1.
    const { f, checker, reports } = follower(2, new Map([["peer", 1]]));
    await record([["peer", 1, frame(7, [1]), 0]], 1);
    await f.poll();
    for (let n = 2; n <= 4; n++) f.output("peer", n, frame(7, [n]), n);
    await record([["peer", 2, frame(7, [2]), 2]], 1); // the rest of log 1's file, then a rotation
    await record([["peer", 3, frame(7, [3]), 3]], 2);
    await f.poll();
    expect(checker.stats).toMatchObject({ checkedOutputs: 2, recordedOutputs: 2 });
    // Log 3 is the promoted standby's own: settle(3) does not read it, and fork 4 counts as unchecked.
    await record([["peer", 4, frame(7, [44]), 4]], 3);
    await f.settle(3);
    expect(checker.stats).toMatchObject({ checkedOutputs: 2, uncheckedOutputs: 1, divergences: 0 });
    expect(reports).toEqual([]);
  });
});

describe("DigestRecorder with lease-fenced file-system calls", () => {
  it("writes, syncs and creates nothing once the fence refuses (a deposed primary)", async () => {
    let held = true;
    const ops = fencedFsOps(nodeFsOps, (what) => {
      if (!held) throw new Error(`lease lost: ${what}`);
    });
    const r = new DigestRecorder(dir, log, 8, ops);
    r.record("peer", 1, frame(7, [1]), 0, 1);
    // The 100 ms flush runs while the lease is held.
    const size = () =>
      readFile(join(dir, "serverdigest1")).then(
        (b) => b.length,
        () => 0,
      );
    while ((await size()) === 0) await new Promise((res) => setTimeout(res, 20));
    const before = await size();
    held = false;
    r.record("peer", 2, frame(7, [2]), 1, 1);
    r.record("peer", 3, frame(7, [3]), 2, 2); // would rotate to a new file
    await r.close();
    expect(await size()).toBe(before);
    expect((await readdir(dir)).sort()).toEqual(["serverdigest1"]);
  });
});
