import { readFile, stat, writeFile } from "node:fs/promises";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  type FileInstanceStorage,
  LogCorruptionError,
  type ScanOptions,
  type ScanResult,
} from "../../src/storage/index.js";
import {
  COMMITTER,
  expectUnitsMatch,
  flipBit,
  newStorage,
  sha256,
  type UnitSpec,
  unitSpecs,
  writeLog,
} from "./helpers.js";

/** A log's bytes and where each unit starts and ends. */
interface Template {
  bytes: Buffer;
  units: UnitSpec[];
  starts: number[];
  ends: number[];
}

async function template(sizes: readonly (readonly [number, number])[], first = 0): Promise<Template> {
  const storage = await newStorage();
  const units = unitSpecs(first, sizes);
  const starts = await writeLog(storage, 1, units);
  const bytes = await readFile(storage.logPath(1));
  const ends = [...starts.slice(1), bytes.length];
  return { bytes, units, starts, ends };
}

/** A storage whose `serverlog<n>` holds exactly `bytes`. */
async function withLog(
  bytes: Uint8Array,
  n = 1,
  storage?: FileInstanceStorage,
): Promise<FileInstanceStorage> {
  const s = storage ?? (await newStorage());
  const w = await s.openLogForAppend(n, { existing: "truncate" });
  await w.close();
  await writeFile(s.logPath(n), bytes);
  return s;
}

const LAST: ScanOptions = { committerId: COMMITTER, expectedFirstSequence: 0, isLastLog: true, repair: true };

async function scanExpectingTail(
  storage: FileInstanceStorage,
  t: Template,
  keep: number,
  options = LAST,
): Promise<ScanResult> {
  const r = await storage.scanLog(1, options);
  expectUnitsMatch(r.units, t.units.slice(0, keep));
  const end = keep === 0 ? 0 : t.ends[keep - 1]!;
  expect(r.tail).toBeDefined();
  expect(r.tail!.truncatedAt).toBe(end);
  expect(r.endOffset).toBe(end);
  return r;
}

async function expectCorruption(
  storage: FileInstanceStorage,
  options: ScanOptions,
  n = 1,
): Promise<LogCorruptionError> {
  const before = await sha256(storage.logPath(n));
  const err = await storage.scanLog(n, options).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(LogCorruptionError);
  expect(await sha256(storage.logPath(n))).toBe(before);
  return err as LogCorruptionError;
}

describe("recovery scan: torn tails", () => {
  it("a log cut at every byte of its last unit is truncated to the previous unit, rescans clean, and takes appends", async () => {
    const t = await template([
      [40, 5],
      [17, 0],
      [60, 9],
    ]);
    const storage = await withLog(t.bytes);
    const lastStart = t.starts[2]!;
    for (let cut = lastStart + 1; cut < t.bytes.length; cut++) {
      await writeFile(storage.logPath(1), t.bytes.subarray(0, cut));
      const r = await scanExpectingTail(storage, t, 2);
      expect(r.truncated).toEqual(r.tail);
      expect(r.tail).toMatchObject({ droppedBytes: cut - lastStart, truncated: true });
      expect((await stat(storage.logPath(1))).size).toBe(lastStart);

      const again = await storage.scanLog(1, LAST);
      expect(again.tail).toBeUndefined();
      expect(again.nextSequence).toBe(2);

      const w = await storage.openLogForAppend(1, { existing: "append", nextSequence: again.nextSequence! });
      const u = t.units[2]!;
      await w.append({ committerId: COMMITTER, sequence: u.sequence, payload: u.payload, meta: u.meta });
      await w.close();
      const after = await storage.scanLog(1, LAST);
      expectUnitsMatch(after.units, t.units);
      expect(after.tail).toBeUndefined();
      expect((await readFile(storage.logPath(1))).equals(t.bytes)).toBe(true);
    }
  });

  it("property: a cut anywhere keeps exactly the complete units (any chunk size, with or without a known committer)", async () => {
    const storage = await newStorage();
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.tuple(fc.integer({ min: 0, max: 400 }), fc.integer({ min: 0, max: 50 })), {
          minLength: 1,
          maxLength: 6,
        }),
        fc.double({ min: 0, max: 1, noNaN: true }),
        fc.constantFrom(64, 100, 1 << 20),
        fc.boolean(),
        async (sizes, where, chunkSize, knownCommitter) => {
          const units = unitSpecs(10, sizes);
          const w = await storage.openLogForAppend(1, { existing: "truncate" });
          for (const u of units) {
            await w.append({
              committerId: COMMITTER,
              sequence: u.sequence,
              payload: u.payload,
              meta: u.meta,
            });
          }
          await w.close();
          const bytes = await readFile(storage.logPath(1));
          const cut = Math.floor(where * bytes.length);
          await writeFile(storage.logPath(1), bytes.subarray(0, cut));

          const r = await storage.scanLog(1, {
            committerId: knownCommitter ? COMMITTER : undefined,
            expectedFirstSequence: 10,
            isLastLog: true,
            repair: true,
            chunkSize,
          });
          let end = 0;
          let keep = 0;
          for (const u of units) {
            const len = 48 + u.payload.length + u.meta.length;
            if (end + len > cut) break;
            end += len;
            keep++;
          }
          expectUnitsMatch(r.units, units.slice(0, keep));
          expect(r.endOffset).toBe(end);
          if (end === cut) expect(r.tail).toBeUndefined();
          else expect(r.tail).toMatchObject({ truncatedAt: end, droppedBytes: cut - end, truncated: true });
          expect((await stat(storage.logPath(1))).size).toBe(end);
        },
      ),
      { numRuns: 60 },
    );
  });

  it("a flipped bit anywhere in the last unit (data record or meta record) is a tail and is truncated", async () => {
    const t = await template([
      [30, 4],
      [25, 6],
      [33, 7],
    ]);
    const storage = await withLog(t.bytes);
    const lastStart = t.starts[2]!;
    for (let at = lastStart; at < t.bytes.length; at++) {
      await writeFile(storage.logPath(1), flipBit(t.bytes, at, at % 8));
      const r = await scanExpectingTail(storage, t, 2);
      expect(r.tail!.truncated).toBe(true);
      expect((await stat(storage.logPath(1))).size).toBe(lastStart);
    }
  });

  it("reports a tail without touching the file when repair is off", async () => {
    const t = await template([
      [30, 4],
      [25, 6],
    ]);
    const storage = await withLog(t.bytes.subarray(0, t.bytes.length - 3));
    const before = await sha256(storage.logPath(1));
    const r = await scanExpectingTail(storage, t, 1, { ...LAST, repair: false });
    expect(r.tail).toMatchObject({ truncated: false, reason: "INCOMPLETE_META" });
    expect(r.truncated).toBeUndefined();
    expect(await sha256(storage.logPath(1))).toBe(before);
  });

  it("a zero-filled tail (preallocated space) is truncated and reported as ZERO_FILLED", async () => {
    const t = await template([
      [30, 4],
      [25, 6],
    ]);
    const storage = await withLog(Buffer.concat([t.bytes, Buffer.alloc(4096)]));
    const r = await scanExpectingTail(storage, t, 2);
    expect(r.tail).toMatchObject({ reason: "ZERO_FILLED", droppedBytes: 4096, truncated: true });
    expect((await readFile(storage.logPath(1))).equals(t.bytes)).toBe(true);

    // A file that is nothing but zeros, scanned with a small chunk, is emptied.
    const zeros = await withLog(Buffer.alloc(10_000));
    const z = await zeros.scanLog(1, { ...LAST, chunkSize: 1000 });
    expect(z.units).toHaveLength(0);
    expect(z.tail).toMatchObject({ reason: "ZERO_FILLED", truncatedAt: 0 });
    expect((await stat(zeros.logPath(1))).size).toBe(0);
  });

  it("a torn unit followed by zeros is a tail", async () => {
    const t = await template([
      [30, 4],
      [25, 6],
    ]);
    const torn = t.bytes.subarray(0, t.starts[1]! + 30);
    const storage = await withLog(Buffer.concat([torn, Buffer.alloc(5000)]));
    await scanExpectingTail(storage, t, 1);
    expect((await stat(storage.logPath(1))).size).toBe(t.starts[1]);
  });
});

describe("recovery scan: corruption before the tail is refused and changes nothing", () => {
  it("a flipped bit anywhere in a middle unit throws LogCorruptionError and leaves the file unchanged, even with repair", async () => {
    const t = await template([
      [30, 4],
      [45, 6],
      [20, 7],
      [10, 1],
    ]);
    const storage = await withLog(t.bytes);
    for (let at = t.starts[1]!; at < t.ends[1]!; at++) {
      await writeFile(storage.logPath(1), flipBit(t.bytes, at, (at * 3) % 8));
      const err = await expectCorruption(storage, LAST);
      expect(err.kind).toBe("VALID_DATA_AFTER");
      expect(err.offset).toBe(t.starts[1]);
      expect(err.validRecordAt).toBeGreaterThan(t.starts[1]!);
      expect(err.code).toBe("LOG_CORRUPTION");
    }
  });

  it("also without a known committer ID, and for damage in the very first unit", async () => {
    const t = await template([
      [30, 4],
      [45, 6],
      [20, 7],
    ]);
    const storage = await withLog(t.bytes);
    for (const at of [0, 3, 5, 9, 17, 23, 24, 40, t.ends[0]! - 1, t.starts[1]! + 2]) {
      await writeFile(storage.logPath(1), flipBit(t.bytes, at, 2));
      const err = await expectCorruption(storage, { isLastLog: true, repair: true, chunkSize: 64 });
      expect(err.kind).toBe("VALID_DATA_AFTER");
    }
  });

  it("damage in a log that is not the newest is refused, even a torn end", async () => {
    const t = await template([
      [30, 4],
      [25, 6],
    ]);
    const storage = await withLog(t.bytes.subarray(0, t.bytes.length - 1));
    const err = await expectCorruption(storage, { ...LAST, isLastLog: false });
    expect(err.kind).toBe("NOT_LAST_LOG");
    expect(err.reason).toBe("INCOMPLETE_META");
    expect(err.offset).toBe(t.starts[1]);
  });

  it("a wrong expected first sequence is refused when more units follow", async () => {
    const t = await template(
      [
        [30, 4],
        [25, 6],
      ],
      5,
    );
    const storage = await withLog(t.bytes);
    const err = await expectCorruption(storage, { ...LAST, expectedFirstSequence: 4 });
    expect(err.reason).toBe("SEQUENCE_MISMATCH");
    expect(err.validRecordAt).toBe(t.starts[1]);
  });

  it("a data record followed directly by the next data record (missing meta) is refused", async () => {
    const t = await template([
      [30, 4],
      [25, 6],
      [20, 2],
    ]);
    const metaOfFirst = t.starts[0]! + 24 + 30;
    const spliced = Buffer.concat([t.bytes.subarray(0, metaOfFirst), t.bytes.subarray(t.ends[0]!)]);
    const storage = await withLog(spliced);
    const err = await expectCorruption(storage, LAST);
    expect(err.reason).toBe("BAD_META");
    expect(err.validRecordAt).toBe(metaOfFirst);
  });

  it("a bad unit between good logs: units before the damage are yielded, then the error", async () => {
    const t = await template([
      [30, 4],
      [25, 6],
      [20, 2],
    ]);
    const storage = await withLog(flipBit(t.bytes, t.starts[1]! + 30));
    const seen: number[] = [];
    const scan = storage.streamLog(1, LAST);
    await expect(
      (async () => {
        for await (const u of scan) seen.push(u.sequence);
      })(),
    ).rejects.toBeInstanceOf(LogCorruptionError);
    expect(seen).toEqual([0]);
  });
});
