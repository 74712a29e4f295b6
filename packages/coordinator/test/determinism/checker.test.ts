// The determinism checker's pieces: the digest file format (round trip, a torn or damaged tail ends it and is
// never trusted), matching by (destination, fork), the diff of a divergence, and retention with the logs.
import { mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { encodeMessage } from "@immortal/wire";
import pino from "pino";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { DeterminismChecker, DigestRecorder, decodeDigestFile } from "../../src/determinism/index.js";
import { FileInstanceStorage } from "../../src/storage/index.js";

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "immortal-digest-"));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const frame = (methodId: number, args: number[]) =>
  encodeMessage({ type: 0, reserved: 0, methodId, rpcType: 1, args: Uint8Array.from(args) });
const log = pino({ level: "silent" });

async function record(outputs: Array<[string, number, Uint8Array, number]>, logNumber = 1): Promise<void> {
  const r = new DigestRecorder(dir, log, 8);
  for (const [dest, fork, f, seq] of outputs) r.record(dest, fork, f, seq, logNumber);
  await r.close();
}

describe("digest files", () => {
  it("round-trip, and a torn or flipped tail ends the file without losing what came before", async () => {
    await record([
      ["", 1, frame(5, [1, 2, 3]), 0],
      ["", 2, frame(5, [4]), 0],
      ["peer", 1, frame(7, []), 3],
    ]);
    const r2 = new DigestRecorder(dir, log, 8);
    r2.record("peer", 2, frame(7, [9]), 4, 1);
    await r2.close();
    const file = join(dir, "serverdigest1");
    const { readFile } = await import("node:fs/promises");
    const bytes = await readFile(file);
    const seen: string[] = [];
    expect(decodeDigestFile(bytes, (d, f, o) => seen.push(`${d}:${f}@${o.inputSequence}/${o.length}`))).toBe(
      bytes.length,
    );
    expect(seen).toEqual([":1@0/8", ":2@0/6", "peer:1@3/5", "peer:2@4/6"]);
    // Cut inside the second frame: only the first is read.
    const first: string[] = [];
    const valid = decodeDigestFile(bytes.subarray(0, bytes.length - 3), (d, f) => first.push(`${d}:${f}`));
    expect(first).toEqual([":1", ":2", "peer:1"]);
    expect(valid).toBeLessThan(bytes.length);
    // A flipped bit in the last frame's body fails its check bytes.
    const flipped = Buffer.from(bytes);
    flipped[flipped.length - 1]! ^= 1;
    const some: string[] = [];
    decodeDigestFile(flipped, (d, f) => some.push(`${d}:${f}`));
    expect(some).toEqual([":1", ":2", "peer:1"]);
  });

  it("are deleted with their logs by retention", async () => {
    for (const n of [1, 2, 3]) {
      await writeFile(join(dir, `serverlog${n}`), "");
      await record([["", n, frame(1, [n]), n]], n);
    }
    const removed = await new FileInstanceStorage(dir).deleteOlderThan(3);
    expect(removed).toEqual(["serverdigest1", "serverdigest2", "serverlog1", "serverlog2"]);
    expect((await readdir(dir)).sort()).toEqual(["serverdigest3", "serverlog3"]);
  });
});

describe("DeterminismChecker", () => {
  it("matches by (destination, fork), skips what the checkpoint holds, and diffs the first divergence", async () => {
    await record([
      ["", 1, frame(5, [1, 2, 3]), 0],
      ["", 2, frame(5, [10, 11, 12, 13, 14, 15, 16, 17, 18]), 1],
      ["peer", 1, frame(7, [1]), 1],
      ["", 3, frame(5, [0]), 2],
    ]);
    // The checkpoint already holds self fork 1: it is not regenerated, so it is not expected either.
    const c = await DeterminismChecker.load(dir, 1, new Map([["", 1]]));
    expect(c.stats.recordedOutputs).toBe(3);
    expect(c.check("peer", 1, frame(7, [1]), 9)).toBeUndefined();
    const d = c.check("", 2, frame(5, [10, 11, 99, 13, 14, 15, 16, 17, 18]), 9);
    expect(d).toMatchObject({
      kind: "differs",
      inputSequence: 1,
      replayInputSequence: 9,
      destination: "",
      fork: 2,
      recorded: { length: 14, methodId: 5, rpcType: 1 },
      replayed: { length: 14, methodId: 5, rpcType: 1 },
      firstDifference: 7, // [size 13 (zig-zag 0x1a)][type][reserved][method 5][rpc type], then args 10, 11, 99
    });
    expect(d!.diff).toContain("first difference at args+2");
    expect(d!.diff.some((l) => l.startsWith("recorded byte 0: 1a 00 00 0a 01 0a 0b 0c"))).toBe(true);
    expect(d!.diff.some((l) => l.startsWith("replayed byte 0: 1a 00 00 0a 01 0a 0b 63 0d"))).toBe(true);
    // An output with no record is counted, not reported; only the first divergence is reported.
    expect(c.check("other", 1, frame(1, []), 9)).toBeUndefined();
    expect(c.finish(true)).toBeUndefined(); // self fork 3 was never regenerated: counted, already reported
    expect(c.stats).toEqual({
      recordedOutputs: 3,
      checkedOutputs: 2,
      uncheckedOutputs: 1,
      divergences: 2,
      notLoaded: 0,
    });
    // Memory is bounded: beyond maxRecorded, recorded outputs are counted, not held.
    const capped = await DeterminismChecker.load(dir, 1, new Map(), 2);
    expect(capped.stats).toMatchObject({ recordedOutputs: 2, notLoaded: 2 });
  });

  it("follows a growing digest file (ingest from the last valid offset), as a tailing standby would", async () => {
    await record([["peer", 1, frame(7, [1]), 4]]);
    const r2 = new DigestRecorder(dir, log, 8);
    r2.record("peer", 2, frame(7, [2]), 5, 1);
    await r2.close();
    const { readFile } = await import("node:fs/promises");
    const bytes = await readFile(join(dir, "serverdigest1"));
    const c = await DeterminismChecker.load(join(dir, "nothing-here"), 1, new Map());
    const at = c.ingest(bytes.subarray(0, bytes.length - 5)); // the second frame is still being written
    expect(c.stats.recordedOutputs).toBe(1);
    expect(c.ingest(bytes.subarray(at))).toBe(bytes.length - at);
    expect(c.stats.recordedOutputs).toBe(2);
    expect(c.check("peer", 2, frame(7, [3]), 9)).toMatchObject({
      kind: "differs",
      inputSequence: 5,
      fork: 2,
    });
  });

  it("reports a recorded output the whole replay never produced, but not after a partial replay", async () => {
    await record([["peer", 1, frame(7, [1]), 4]]);
    const partial = await DeterminismChecker.load(dir, 1, new Map());
    expect(partial.finish(false)).toBeUndefined();
    const whole = await DeterminismChecker.load(dir, 1, new Map());
    expect(whole.finish(true)).toMatchObject({
      kind: "missing",
      inputSequence: 4,
      destination: "peer",
      fork: 1,
    });
  });
});
