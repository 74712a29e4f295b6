import { existsSync } from "node:fs";
import { type FileHandle, open, readdir, stat, symlink } from "node:fs/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DiskFullError, type FsOps, nodeFsOps, StorageError } from "../../src/storage/index.js";
import { bytesFor, COMMITTER, expectUnitsMatch, newStorage, unitSpecs } from "./helpers.js";

// /dev/full fails every write with a real ENOSPC from the kernel: the honest way to exercise the error
// mapping without root or a tiny file system.
const haveDevFull = existsSync("/dev/full");

describe.skipIf(!haveDevFull)("disk full", () => {
  let full: FileHandle;
  beforeAll(async () => {
    full = await open("/dev/full", "w");
  });
  afterAll(async () => {
    await full.close();
  });

  /** The error Node itself raises for a write on a full device. */
  async function realEnospc(): Promise<unknown> {
    try {
      await full.write(Buffer.alloc(1), 0, 1, 0);
    } catch (err) {
      return err;
    }
    throw new Error("/dev/full accepted a write");
  }

  it("a log file that is /dev/full: append fails with DiskFullError, and the writer refuses to go on", async () => {
    const storage = await newStorage();
    const w0 = await storage.openLogForAppend(2); // creates the directory
    await w0.close();
    await symlink("/dev/full", storage.logPath(1));
    const w = await storage.openLogForAppend(1);
    const err = await w
      .append({ committerId: COMMITTER, sequence: 0, payload: bytesFor(0, 100), meta: bytesFor(0, 5) })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DiskFullError);
    expect(err).toMatchObject({
      code: "DISK_FULL",
      sysCode: "ENOSPC",
      operation: "append",
      fileRestored: false,
    });
    await expect(
      w.append({ committerId: COMMITTER, sequence: 0, payload: bytesFor(0, 1), meta: bytesFor(0, 1) }),
    ).rejects.toMatchObject({ code: "INVALID_STATE" });
    await w.close();
  });

  it("a write that fills the disk part-way is cut back to the last synced unit, and the writer can retry", async () => {
    let writes = 0;
    const ops: FsOps = {
      ...nodeFsOps,
      // The third append gets part of its bytes onto the disk, then the device is full.
      writev: async (fh, buffers, position) => {
        if (++writes !== 3) return nodeFsOps.writev(fh, buffers, position);
        await nodeFsOps.write(fh, buffers[0]!, 0, 10, position);
        return nodeFsOps.writev(full, buffers, 0);
      },
    };
    const storage = await newStorage({ fsOps: ops });
    const units = unitSpecs(0, [
      [100, 5],
      [200, 6],
      [300, 7],
    ]);
    const w = await storage.openLogForAppend(1);
    const append = (i: number) =>
      w.append({
        committerId: COMMITTER,
        sequence: units[i]!.sequence,
        payload: units[i]!.payload,
        meta: units[i]!.meta,
      });
    await append(0);
    await append(1);
    const sizeBefore = w.size;
    const err = await append(2).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DiskFullError);
    expect(err).toMatchObject({ fileRestored: true, sysCode: "ENOSPC" });
    expect(w.size).toBe(sizeBefore);
    expect((await stat(storage.logPath(1))).size).toBe(sizeBefore);
    const mid = await storage.scanLog(1, { committerId: COMMITTER, isLastLog: true, repair: false });
    expect(mid.tail).toBeUndefined();
    expectUnitsMatch(mid.units, units.slice(0, 2));

    await append(2); // space came back
    await w.close();
    const r = await storage.scanLog(1, { committerId: COMMITTER, isLastLog: true, repair: false });
    expectUnitsMatch(r.units, units);
  });

  it("ENOSPC from fdatasync is a DiskFullError; the unit is removed and the writer stops", async () => {
    const enospc = await realEnospc();
    let syncs = 0;
    const ops: FsOps = {
      ...nodeFsOps,
      datasync: async (fh) => {
        if (++syncs === 2) throw enospc;
        return nodeFsOps.datasync(fh);
      },
    };
    const storage = await newStorage({ fsOps: ops });
    const units = unitSpecs(0, [
      [10, 1],
      [20, 2],
    ]);
    const w = await storage.openLogForAppend(1);
    await w.append({ committerId: COMMITTER, sequence: 0, payload: units[0]!.payload, meta: units[0]!.meta });
    const err = await w
      .append({ committerId: COMMITTER, sequence: 1, payload: units[1]!.payload, meta: units[1]!.meta })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DiskFullError);
    expect(err).toMatchObject({ operation: "fdatasync", fileRestored: true });
    await expect(
      w.append({ committerId: COMMITTER, sequence: 1, payload: units[1]!.payload, meta: units[1]!.meta }),
    ).rejects.toMatchObject({ code: "INVALID_STATE" });
    await w.close();
    const r = await storage.scanLog(1, { committerId: COMMITTER, isLastLog: true, repair: false });
    expectUnitsMatch(r.units, units.slice(0, 1));
    expect(r.tail).toBeUndefined();
  });

  it("ENOSPC while streaming a checkpoint is a DiskFullError and leaves no file behind", async () => {
    let writes = 0;
    const ops: FsOps = {
      ...nodeFsOps,
      write: async (fh, buffer, offset, length, position) =>
        ++writes === 2
          ? nodeFsOps.write(full, buffer, offset, length, 0)
          : nodeFsOps.write(fh, buffer, offset, length, position),
    };
    const storage = await newStorage({ fsOps: ops });
    const w = await storage.createCheckpoint(1);
    await w.writeIcState(bytesFor(1, 10), 4 * 1024 * 1024);
    const chunk = bytesFor(2, 1024 * 1024);
    const err = await (async () => {
      for (let i = 0; i < 4; i++) await w.appendAppState(chunk);
      await w.commit();
    })().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DiskFullError);
    expect(err).toBeInstanceOf(StorageError);
    expect(await readdir(storage.dir)).toEqual([]);
    expect(await storage.listCheckpoints()).toEqual([]);
  });
});
