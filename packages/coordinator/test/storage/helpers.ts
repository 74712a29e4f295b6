import { createHash } from "node:crypto";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { afterEach } from "vitest";
import { FileInstanceStorage, type FileStorageOptions, type ScannedUnit } from "../../src/storage/index.js";

export const COMMITTER = 0x1234567;

const dirs: string[] = [];

/** A fresh directory under the OS temp dir, removed after the test. */
export async function tempDir(): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), "immortal-storage-"));
  dirs.push(dir);
  return dir;
}

afterEach(async () => {
  for (const dir of dirs.splice(0)) await rm(dir, { recursive: true, force: true });
});

export async function newStorage(options: FileStorageOptions = {}): Promise<FileInstanceStorage> {
  return FileInstanceStorage.forInstance(await tempDir(), "inst", 0, options);
}

/** Deterministic, sequence-dependent bytes, so a unit read back can be checked against what was written. */
export function bytesFor(seed: number, length: number): Buffer {
  const b = Buffer.allocUnsafe(length);
  let x = (seed * 2654435761 + 1) >>> 0;
  for (let i = 0; i < length; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    b[i] = x >>> 24;
  }
  return b;
}

export interface UnitSpec {
  sequence: number;
  payload: Buffer;
  meta: Buffer;
}

export function unitSpecs(first: number, sizes: readonly (readonly [number, number])[]): UnitSpec[] {
  return sizes.map(([p, m], i) => ({
    sequence: first + i,
    payload: bytesFor(first + i, p),
    meta: bytesFor(1000 + first + i, m),
  }));
}

/** Writes the units to `serverlog<n>` (created) and closes it; returns each unit's file offset. */
export async function writeLog(
  storage: FileInstanceStorage,
  n: number,
  units: readonly UnitSpec[],
): Promise<number[]> {
  const w = await storage.openLogForAppend(n);
  const offsets: number[] = [];
  for (const u of units) {
    const r = await w.append({
      committerId: COMMITTER,
      sequence: u.sequence,
      payload: u.payload,
      meta: u.meta,
    });
    offsets.push(r.offset);
  }
  await w.close();
  return offsets;
}

export function expectUnitsMatch(actual: readonly ScannedUnit[], expected: readonly UnitSpec[]): void {
  if (actual.length !== expected.length)
    throw new Error(`expected ${expected.length} units, got ${actual.length}`);
  for (let i = 0; i < actual.length; i++) {
    const a = actual[i]!;
    const e = expected[i]!;
    if (a.sequence !== e.sequence) throw new Error(`unit ${i}: sequence ${a.sequence} ≠ ${e.sequence}`);
    if (!Buffer.from(a.payload).equals(e.payload)) throw new Error(`unit ${i}: payload differs`);
    if (!Buffer.from(a.meta).equals(e.meta)) throw new Error(`unit ${i}: meta differs`);
  }
}

export async function sha256(file: string): Promise<string> {
  return createHash("sha256")
    .update(await readFile(file))
    .digest("hex");
}

export function flipBit(bytes: Buffer, offset: number, bit = 0): Buffer {
  const copy = Buffer.from(bytes);
  copy[offset]! ^= 1 << bit;
  return copy;
}
