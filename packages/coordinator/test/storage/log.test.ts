import { readFile, stat } from "node:fs/promises";
import { checkBytes, RECORD_HEADER_SIZE, readRecordHeader } from "@immortal/wire";
import { describe, expect, it } from "vitest";
import { ConcurrentAppendError, META_SEQUENCE, StorageError } from "../../src/storage/index.js";
import { bytesFor, COMMITTER, expectUnitsMatch, newStorage, unitSpecs, writeLog } from "./helpers.js";

describe("log writer and scan", () => {
  it("reads back the units it wrote, byte for byte, and the on-disk layout is data record + meta record", async () => {
    const storage = await newStorage();
    const units = unitSpecs(0, [
      [0, 0],
      [1, 5],
      [300, 40],
      [70_000, 3],
    ]);
    await writeLog(storage, 1, units);

    const { units: scanned, ...result } = await storage.scanLog(1, {
      committerId: COMMITTER,
      expectedFirstSequence: 0,
      isLastLog: true,
      repair: true,
    });
    expectUnitsMatch(scanned, units);
    expect(result.tail).toBeUndefined();
    expect(result.truncated).toBeUndefined();
    expect(result.nextSequence).toBe(4);
    expect(result.endOffset).toBe((await stat(storage.logPath(1))).size);

    // Independent check of the format with the wire codec.
    const bytes = await readFile(storage.logPath(1));
    let pos = 0;
    for (const u of units) {
      const data = readRecordHeader(bytes, pos);
      expect(data).toMatchObject({
        committerId: COMMITTER,
        sequence: u.sequence,
        checkBytes: checkBytes(u.payload),
      });
      expect(data.length).toBe(RECORD_HEADER_SIZE + u.payload.length);
      pos += data.length;
      const meta = readRecordHeader(bytes, pos);
      expect(meta).toMatchObject({
        committerId: COMMITTER,
        sequence: META_SEQUENCE,
        checkBytes: checkBytes(u.meta),
      });
      pos += meta.length;
    }
    expect(pos).toBe(bytes.length);
    // The scanned data record is exactly the on-disk bytes (deliverable as is).
    expect(
      Buffer.from(scanned[2]!.dataRecord).equals(
        bytes.subarray(scanned[2]!.offset, scanned[2]!.offset + 324),
      ),
    ).toBe(true);
  });

  it("returns the delivered data record, equal to the bytes on disk, for payload pieces and in-place records", async () => {
    const storage = await newStorage();
    const w = await storage.openLogForAppend(1, { nextSequence: 7 });
    const pieces = [bytesFor(1, 10), bytesFor(2, 0), bytesFor(3, 2000)];
    const a = await w.append({ committerId: COMMITTER, sequence: 7, payload: pieces, meta: bytesFor(4, 3) });
    expect(a.dataRecordPieces).toHaveLength(4);
    expect(a.dataLength).toBe(2034);

    const record = Buffer.alloc(RECORD_HEADER_SIZE + 50);
    bytesFor(5, 50).copy(record, RECORD_HEADER_SIZE);
    const b = await w.append({ committerId: COMMITTER, sequence: 8, record, meta: Buffer.alloc(0) });
    expect(b.dataRecord).toBe(record); // in place: no copy
    expect(readRecordHeader(record, 0)).toMatchObject({ committerId: COMMITTER, sequence: 8, length: 74 });
    expect(w.size).toBe(b.offset + b.length);
    expect(w.nextSequence).toBe(9);
    await w.close();

    const file = await readFile(storage.logPath(1));
    expect(Buffer.from(a.dataRecord).equals(file.subarray(0, a.dataLength))).toBe(true);
    expect(Buffer.from(b.dataRecord).equals(file.subarray(b.offset, b.offset + 74))).toBe(true);
    const { units } = await storage.scanLog(1, { committerId: COMMITTER, isLastLog: true, repair: false });
    expect(units.map((u) => u.sequence)).toEqual([7, 8]);
    expect(Buffer.from(units[0]!.payload).equals(Buffer.concat(pieces))).toBe(true);
  });

  it("continues sequences across log files, checked with expectedFirstSequence", async () => {
    const storage = await newStorage();
    const first = unitSpecs(0, [
      [10, 1],
      [20, 2],
      [30, 3],
    ]);
    const second = unitSpecs(3, [
      [40, 4],
      [50, 5],
    ]);
    await writeLog(storage, 1, first);
    await writeLog(storage, 2, second);
    expect(await storage.listLogs()).toEqual([1, 2]);

    const r1 = await storage.scanLog(1, {
      committerId: COMMITTER,
      expectedFirstSequence: 0,
      isLastLog: false,
      repair: false,
    });
    expectUnitsMatch(r1.units, first);
    const r2 = await storage.scanLog(2, {
      committerId: COMMITTER,
      expectedFirstSequence: r1.nextSequence!,
      isLastLog: true,
      repair: true,
    });
    expectUnitsMatch(r2.units, second);
    expect(r2.firstSequence).toBe(3);
    expect(r2.nextSequence).toBe(5);
  });

  it("streams units from a log larger than its read chunk, with small chunks crossing unit boundaries", async () => {
    const storage = await newStorage();
    const sizes: [number, number][] = [];
    for (let i = 0; i < 60; i++) sizes.push([(i * 37) % 500, i % 7]);
    sizes.push([5000, 10]); // larger than the chunk: the buffer grows for this one unit
    const units = unitSpecs(100, sizes);
    await writeLog(storage, 1, units);
    const scan = storage.streamLog(1, {
      committerId: COMMITTER,
      expectedFirstSequence: 100,
      isLastLog: true,
      repair: false,
      chunkSize: 256,
    });
    const seen = [];
    for await (const u of scan) seen.push(u);
    expectUnitsMatch(seen, units);
    expect(scan.result.unitCount).toBe(61);
    expect(scan.result.tail).toBeUndefined();
  });

  it("an empty log scans clean and keeps the expected sequence", async () => {
    const storage = await newStorage();
    const w = await storage.openLogForAppend(3);
    await w.close();
    const r = await storage.scanLog(3, { expectedFirstSequence: 42, isLastLog: true, repair: true });
    expect(r.units).toEqual([]);
    expect(r.nextSequence).toBe(42);
    expect(r.tail).toBeUndefined();
  });

  it("refuses to overwrite a log with content unless asked, and can continue one", async () => {
    const storage = await newStorage();
    await writeLog(storage, 1, unitSpecs(0, [[5, 5]]));
    await expect(storage.openLogForAppend(1)).rejects.toMatchObject({ code: "ALREADY_EXISTS" });

    const cont = await storage.openLogForAppend(1, { existing: "append", nextSequence: 1 });
    expect(cont.size).toBe((await stat(storage.logPath(1))).size);
    await expect(
      cont.append({ committerId: COMMITTER, sequence: 5, payload: bytesFor(0, 1), meta: bytesFor(0, 1) }),
    ).rejects.toMatchObject({ code: "INVALID_ARGUMENT" });
    await cont.append({ committerId: COMMITTER, sequence: 1, payload: bytesFor(1, 9), meta: bytesFor(1, 1) });
    await cont.close();
    const r = await storage.scanLog(1, {
      committerId: COMMITTER,
      expectedFirstSequence: 0,
      isLastLog: true,
      repair: false,
    });
    expect(r.units.map((u) => u.sequence)).toEqual([0, 1]);

    const fresh = await storage.openLogForAppend(1, { existing: "truncate" });
    expect(fresh.size).toBe(0);
    await fresh.close();
    expect((await stat(storage.logPath(1))).size).toBe(0);
  });

  it("rejects a second append while one is in flight with ConcurrentAppendError, and the first still lands", async () => {
    const storage = await newStorage();
    const w = await storage.openLogForAppend(1);
    const first = w.append({
      committerId: COMMITTER,
      sequence: 0,
      payload: bytesFor(0, 100),
      meta: bytesFor(0, 4),
    });
    const second = w.append({
      committerId: COMMITTER,
      sequence: 1,
      payload: bytesFor(1, 100),
      meta: bytesFor(1, 4),
    });
    await expect(second).rejects.toBeInstanceOf(ConcurrentAppendError);
    await expect(second).rejects.toMatchObject({ code: "CONCURRENT_APPEND" });
    await first;
    // Once the first one resolved, the next append is fine.
    await w.append({ committerId: COMMITTER, sequence: 1, payload: bytesFor(1, 100), meta: bytesFor(1, 4) });
    await w.close();
    await expect(
      w.append({ committerId: COMMITTER, sequence: 2, payload: bytesFor(2, 1), meta: bytesFor(2, 1) }),
    ).rejects.toMatchObject({ code: "INVALID_STATE" });
    const r = await storage.scanLog(1, {
      committerId: COMMITTER,
      expectedFirstSequence: 0,
      isLastLog: true,
      repair: false,
    });
    expect(r.units.map((u) => u.sequence)).toEqual([0, 1]);
  });

  it("validates arguments before touching the file", async () => {
    const storage = await newStorage();
    const w = await storage.openLogForAppend(1, { maxRecordSize: 1000 });
    const bad = [
      { committerId: 2 ** 31, sequence: 0, payload: bytesFor(0, 1), meta: bytesFor(0, 1) },
      { committerId: COMMITTER, sequence: -1, payload: bytesFor(0, 1), meta: bytesFor(0, 1) },
      { committerId: COMMITTER, sequence: 0, payload: bytesFor(0, 1000), meta: bytesFor(0, 1) },
      { committerId: COMMITTER, sequence: 0, payload: bytesFor(0, 1), meta: bytesFor(0, 1000) },
    ];
    for (const unit of bad) {
      await expect(w.append(unit)).rejects.toBeInstanceOf(StorageError);
    }
    await expect(
      w.append({ committerId: COMMITTER, sequence: 0, record: Buffer.alloc(10), meta: Buffer.alloc(0) }),
    ).rejects.toMatchObject({ code: "INVALID_ARGUMENT" });
    expect(w.size).toBe(0);
    await w.close();
    expect((await stat(storage.logPath(1))).size).toBe(0);
  });

  it("a scan of a missing log is NOT_FOUND, and a scan can only be iterated once", async () => {
    const storage = await newStorage();
    await expect(storage.scanLog(9, { isLastLog: true, repair: false })).rejects.toMatchObject({
      code: "NOT_FOUND",
    });
    const w = await storage.openLogForAppend(2);
    await w.close();
    const scan = storage.streamLog(2, { isLastLog: true, repair: false });
    expect(() => scan.result).toThrow(StorageError);
    await scan.collect();
    expect(() => scan[Symbol.asyncIterator]()).toThrow(StorageError);
  });
});
