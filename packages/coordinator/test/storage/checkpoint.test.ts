import { createHash } from "node:crypto";
import { open, readdir, readFile, stat, writeFile } from "node:fs/promises";
import { checkBytes, writeIntFixed, writeLongFixed } from "@immortal/wire";
import { describe, expect, it } from "vitest";
import {
  CHECKPOINT_MAGIC,
  CheckpointFormatError,
  CheckpointLengthError,
  ChecksumMismatchError,
  type FileInstanceStorage,
  openNewestValidCheckpoint,
  StorageError,
} from "../../src/storage/index.js";
import { bytesFor, flipBit, newStorage } from "./helpers.js";

const MiB = 1024 * 1024;

/** Writes a checkpoint whose app state is `total` bytes of deterministic data in `chunk`-sized pieces. */
async function writeCheckpoint(
  storage: FileInstanceStorage,
  n: number,
  icState: Uint8Array,
  total: number,
  chunk: number,
  declare = true,
): Promise<string> {
  const w = await storage.createCheckpoint(n);
  await w.writeIcState(icState, declare ? total : undefined);
  const sha = createHash("sha256");
  // One buffer, refilled: the writer must not depend on the caller keeping its chunks.
  const buf = Buffer.allocUnsafe(chunk);
  for (let done = 0, i = 0; done < total; i++) {
    const n2 = Math.min(chunk, total - done);
    bytesFor(i, 64).copy(buf, 0, 0, Math.min(64, n2));
    buf.fill(i & 0xff, Math.min(64, n2), n2);
    const piece = buf.subarray(0, n2);
    sha.update(piece);
    await w.appendAppState(piece);
    done += n2;
  }
  await w.commit(total);
  return sha.digest("hex");
}

async function readAppState(storage: FileInstanceStorage, n: number, chunkSize?: number): Promise<string> {
  const r = await storage.openCheckpoint(n);
  try {
    const sha = createHash("sha256");
    for await (const c of r.appState(chunkSize === undefined ? {} : { chunkSize })) sha.update(c);
    return sha.digest("hex");
  } finally {
    await r.close();
  }
}

describe("checkpoints", () => {
  it("round-trips IC state and a 20 MiB app state streamed in 64 KiB chunks", async () => {
    const storage = await newStorage();
    const ic = bytesFor(7, 3000);
    const written = await writeCheckpoint(storage, 2, ic, 20 * MiB, 64 * 1024);
    expect(await storage.listCheckpoints()).toEqual([2]);
    expect((await readdir(storage.dir)).filter((f) => f.endsWith(".tmp"))).toEqual([]);

    const r = await storage.openCheckpoint(2);
    expect(Buffer.from(r.icState).equals(ic)).toBe(true);
    expect(r.appStateLength).toBe(BigInt(20 * MiB));
    expect(r.fileSize).toBe(8 + 4 + 3000 + 8 + 20 * MiB + 8);
    await r.verify();
    const sizes = new Set<number>();
    const sha = createHash("sha256");
    for await (const c of r.appState({ chunkSize: 64 * 1024 })) {
      sizes.add(c.length);
      sha.update(c);
    }
    await r.close();
    expect(sha.digest("hex")).toBe(written);
    expect([...sizes]).toEqual([64 * 1024]);

    // The format, checked independently: magic, lengths, trailer = xxHash64 of everything before it.
    const bytes = await readFile(storage.checkpointPath(2));
    expect(bytes.subarray(0, 8).toString("ascii")).toBe("IMMCHK01");
    expect(bytes.readInt32LE(8)).toBe(3000);
    expect(bytes.readBigInt64LE(12 + 3000)).toBe(BigInt(20 * MiB));
    expect(bytes.readBigUInt64LE(bytes.length - 8)).toBe(checkBytes(bytes.subarray(0, bytes.length - 8)));
  });

  it("streams a 160 MiB checkpoint in and out with bounded memory", async () => {
    const storage = await newStorage();
    const base = process.memoryUsage().rss;
    let peak = base;
    const sample = (): void => {
      peak = Math.max(peak, process.memoryUsage().rss);
    };
    const total = 160 * MiB;
    const w = await storage.createCheckpoint(1);
    await w.writeIcState(bytesFor(1, 100), total);
    const chunk = Buffer.alloc(256 * 1024, 0xab);
    for (let done = 0; done < total; done += chunk.length) {
      await w.appendAppState(chunk);
      sample();
    }
    await w.commit(total);
    const r = await storage.openCheckpoint(1);
    await r.verify();
    sample();
    let read = 0;
    for await (const c of r.appState()) {
      read += c.length;
      sample();
    }
    await r.close();
    expect(read).toBe(total);
    expect(peak - base).toBeLessThan(64 * MiB);
  });

  it("the app-state length is 64-bit: a sparse file declaring more than 4 GiB opens with the exact length", async () => {
    const storage = await newStorage();
    const w = await storage.createCheckpoint(1); // creates the directory
    await w.abort();
    const appLength = 2n ** 32n + 5n;
    const header = Buffer.alloc(8 + 4 + 3 + 8);
    CHECKPOINT_MAGIC.copy(header, 0);
    writeIntFixed(header, 8, 3);
    header.set([1, 2, 3], 12);
    writeLongFixed(header, 15, appLength);
    const fh = await open(storage.checkpointPath(1), "w");
    await fh.write(header, 0, header.length, 0);
    await fh.truncate(header.length + Number(appLength) + 8); // sparse: costs no disk space
    await fh.close();
    const r = await storage.openCheckpoint(1);
    expect(r.appStateLength).toBe(appLength);
    expect(Array.from(r.icState)).toEqual([1, 2, 3]);
    expect(r.fileSize).toBe(header.length + Number(appLength) + 8);
    await r.close();
  });

  it("a flipped byte is caught: verify() and the end of appState() throw ChecksumMismatchError", async () => {
    const storage = await newStorage();
    await writeCheckpoint(storage, 1, bytesFor(1, 50), 300_000, 10_000);
    const good = await readFile(storage.checkpointPath(1));
    for (const at of [20, 8 + 4 + 50 + 8 + 123_456, good.length - 3]) {
      await writeFile(storage.checkpointPath(1), flipBit(good, at, 5));
      const r = await storage.openCheckpoint(1);
      await expect(r.verify()).rejects.toBeInstanceOf(ChecksumMismatchError);
      await r.close();
      await expect(readAppState(storage, 1, 4096)).rejects.toMatchObject({ code: "CHECKSUM_MISMATCH" });
    }
    // Damage to the structure is caught when opening.
    await writeFile(storage.checkpointPath(1), flipBit(good, 0));
    await expect(storage.openCheckpoint(1)).rejects.toBeInstanceOf(CheckpointFormatError);
    await writeFile(storage.checkpointPath(1), good.subarray(0, good.length - 1));
    await expect(storage.openCheckpoint(1)).rejects.toBeInstanceOf(CheckpointFormatError);
    await writeFile(storage.checkpointPath(1), flipBit(good, 8 + 4 + 50 + 7, 1)); // app length's top byte
    await expect(storage.openCheckpoint(1)).rejects.toBeInstanceOf(CheckpointFormatError);
    await writeFile(storage.checkpointPath(1), good.subarray(0, 10));
    await expect(storage.openCheckpoint(1)).rejects.toBeInstanceOf(CheckpointFormatError);
  });

  it("recovery picks the newest checkpoint that verifies", async () => {
    const storage = await newStorage();
    await writeCheckpoint(storage, 1, bytesFor(1, 10), 1000, 100);
    await writeCheckpoint(storage, 2, bytesFor(2, 10), 1000, 100);
    await writeCheckpoint(storage, 3, bytesFor(3, 10), 1000, 100);
    const bytes = await readFile(storage.checkpointPath(3));
    await writeFile(storage.checkpointPath(3), flipBit(bytes, 500));
    const { checkpoint, skipped } = await openNewestValidCheckpoint(storage);
    expect(checkpoint?.n).toBe(2);
    expect(skipped.map((s) => [s.n, s.error.code])).toEqual([[3, "CHECKSUM_MISMATCH"]]);
    await checkpoint?.reader.close();
  });

  it("an unpublished .tmp is not listed; cleanup() removes it but not one still being written", async () => {
    const storage = await newStorage();
    await writeCheckpoint(storage, 1, bytesFor(1, 10), 100, 10);
    await writeFile(`${storage.checkpointPath(2)}.tmp`, bytesFor(2, 500)); // left by a crash
    const active = await storage.createCheckpoint(3);
    await active.writeIcState(bytesFor(3, 10), 5);
    expect(await storage.listCheckpoints()).toEqual([1]);
    expect(await storage.cleanup()).toEqual(["serverchkpt2.tmp"]);
    expect((await readdir(storage.dir)).sort()).toEqual(["serverchkpt1", "serverchkpt3.tmp"]);
    await active.appendAppState(bytesFor(4, 5));
    await active.commit();
    expect(await storage.listCheckpoints()).toEqual([1, 3]);
    expect(await storage.cleanup()).toEqual([]);
  });

  it("a wrong length is a typed error and publishes nothing", async () => {
    const storage = await newStorage();
    // Too short at commit.
    let w = await storage.createCheckpoint(1);
    await w.writeIcState(bytesFor(1, 10), 100);
    await w.appendAppState(bytesFor(2, 90));
    await expect(w.commit(100)).rejects.toBeInstanceOf(CheckpointLengthError);
    // Commit's expected length disagreeing with the declared one.
    w = await storage.createCheckpoint(1);
    await w.writeIcState(bytesFor(1, 10), 100);
    await w.appendAppState(bytesFor(2, 100));
    await expect(w.commit(99)).rejects.toMatchObject({ code: "CHECKPOINT_LENGTH" });
    // Too long while streaming.
    w = await storage.createCheckpoint(1);
    await w.writeIcState(bytesFor(1, 10), 100);
    await w.appendAppState(bytesFor(2, 60));
    await expect(w.appendAppState(bytesFor(3, 41))).rejects.toBeInstanceOf(CheckpointLengthError);
    await expect(w.appendAppState(bytesFor(3, 1))).rejects.toMatchObject({ code: "INVALID_STATE" });
    // Length given only at commit, and wrong.
    w = await storage.createCheckpoint(1);
    await w.writeIcState(bytesFor(1, 10));
    await w.appendAppState(bytesFor(2, 60));
    await expect(w.commit(61)).rejects.toBeInstanceOf(CheckpointLengthError);

    expect(await storage.listCheckpoints()).toEqual([]);
    expect(await readdir(storage.dir)).toEqual([]);
  });

  it("a length given only at commit produces the same file as a declared one", async () => {
    const storage = await newStorage();
    const ic = bytesFor(9, 77);
    const a = await writeCheckpoint(storage, 1, ic, 3 * MiB + 17, 100_000, true);
    const b = await writeCheckpoint(storage, 2, ic, 3 * MiB + 17, 100_000, false);
    expect(a).toBe(b);
    // Buffer.equals, not toEqual: a deep comparison of 3 MiB element by element takes seconds.
    expect(
      (await readFile(storage.checkpointPath(1))).equals(await readFile(storage.checkpointPath(2))),
    ).toBe(true);
    const r = await storage.openCheckpoint(2);
    await r.verify();
    await r.close();
  });

  it("refuses to replace a published checkpoint unless asked; abort removes the temporary file", async () => {
    const storage = await newStorage();
    await writeCheckpoint(storage, 1, bytesFor(1, 10), 10, 10);
    await expect(storage.createCheckpoint(1)).rejects.toMatchObject({ code: "ALREADY_EXISTS" });
    const w = await storage.createCheckpoint(1, { overwrite: true });
    await w.writeIcState(bytesFor(5, 5), 0);
    await w.abort();
    await w.abort();
    await expect(w.commit()).rejects.toBeInstanceOf(StorageError);
    expect((await readdir(storage.dir)).sort()).toEqual(["serverchkpt1"]);
    expect((await stat(storage.checkpointPath(1))).size).toBe(8 + 4 + 10 + 8 + 10 + 8);
    await expect(storage.openCheckpoint(7)).rejects.toMatchObject({ code: "NOT_FOUND" });
  });
});
