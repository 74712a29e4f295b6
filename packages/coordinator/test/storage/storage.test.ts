import { mkdir, readdir, stat, writeFile } from "node:fs/promises";
import * as path from "node:path";
import { describe, expect, it } from "vitest";
import {
  FileInstanceStorage,
  instanceDirectory,
  parseStorageFileName,
  StorageError,
} from "../../src/storage/index.js";
import { bytesFor, newStorage, tempDir, unitSpecs, writeLog } from "./helpers.js";

describe("instance storage", () => {
  it("uses AMBROSIA's layout: <logDir>/<instance>_<version>/serverlog<N>, serverchkpt<N>", async () => {
    const logDir = await tempDir();
    const storage = FileInstanceStorage.forInstance(logDir, "server", 3);
    expect(storage.dir).toBe(path.join(logDir, "server_3"));
    expect(storage.logPath(1)).toBe(path.join(logDir, "server_3", "serverlog1"));
    expect(storage.checkpointPath(12)).toBe(path.join(logDir, "server_3", "serverchkpt12"));
    expect(() => instanceDirectory(logDir, "a/b", 0)).toThrow(StorageError);
    expect(() => storage.logPath(0)).toThrow(StorageError);
    expect(parseStorageFileName("serverlog10")).toEqual({ kind: "log", n: 10 });
    expect(parseStorageFileName("serverchkpt2.tmp")).toEqual({ kind: "checkpoint-tmp", n: 2 });
    expect(parseStorageFileName("serverlog01")).toBeUndefined();
    expect(parseStorageFileName("serverkillFile")).toBeUndefined();
  });

  it("touches nothing until the first write, and lists an absent directory as empty", async () => {
    const logDir = await tempDir();
    const storage = FileInstanceStorage.forInstance(logDir, "inst", 0);
    expect(await storage.listLogs()).toEqual([]);
    expect(await storage.listCheckpoints()).toEqual([]);
    expect(await readdir(logDir)).toEqual([]);
    const w = await storage.openLogForAppend(1);
    await w.close();
    expect((await stat(storage.dir)).isDirectory()).toBe(true);
    expect(await storage.listLogs()).toEqual([1]);
  });

  it("lists logs and checkpoints numerically and ignores other files", async () => {
    const storage = await newStorage();
    for (const n of [10, 2, 1]) await writeLog(storage, n, unitSpecs(n, [[3, 3]]));
    await mkdir(storage.dir, { recursive: true });
    for (const name of ["serverchkpt9", "serverchkpt10", "serverchkpt3.tmp", "serverkillFile", "notes.txt"]) {
      await writeFile(path.join(storage.dir, name), bytesFor(1, 3));
    }
    expect(await storage.listLogs()).toEqual([1, 2, 10]);
    expect(await storage.listCheckpoints()).toEqual([9, 10]);
  });

  it("retention: deleteOlderThan removes exactly the logs, checkpoints and stale .tmp files below the cut", async () => {
    const storage = await newStorage();
    for (let n = 1; n <= 5; n++) {
      await writeLog(storage, n, unitSpecs(n, [[10, 1]]));
      const c = await storage.createCheckpoint(n);
      await c.writeIcState(bytesFor(n, 4), 2);
      await c.appendAppState(bytesFor(n, 2));
      await c.commit();
    }
    await writeFile(path.join(storage.dir, "serverchkpt2.tmp"), bytesFor(0, 1));
    await writeFile(path.join(storage.dir, "serverchkpt7.tmp"), bytesFor(0, 1));
    await writeFile(path.join(storage.dir, "serverkillFile"), bytesFor(0, 1));

    const removed = await storage.deleteOlderThan(3);
    expect(removed).toEqual(["serverchkpt1", "serverchkpt2", "serverchkpt2.tmp", "serverlog1", "serverlog2"]);
    expect((await readdir(storage.dir)).sort()).toEqual([
      "serverchkpt3",
      "serverchkpt4",
      "serverchkpt5",
      "serverchkpt7.tmp",
      "serverkillFile",
      "serverlog3",
      "serverlog4",
      "serverlog5",
    ]);
    expect(await storage.deleteOlderThan(3)).toEqual([]);
    expect(await storage.deleteOlderThan(1)).toEqual([]);
  });
});
