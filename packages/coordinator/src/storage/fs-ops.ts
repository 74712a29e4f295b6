import type { FileHandle } from "node:fs/promises";
import * as fs from "node:fs/promises";
import { StorageError } from "./errors.js";

/**
 * The handful of file-system calls the storage layer makes, in one object. Production code uses
 * `nodeFsOps` (thin wrappers over `node:fs/promises`). The seam exists so that tests can make Node's own
 * calls fail the way a full disk does (e.g. by redirecting one `writev` to `/dev/full`), which no
 * unprivileged test can otherwise arrange on a real file system. A future replicated store will sit behind
 * `InstanceStorage`, not here.
 */
export interface FsOps {
  open(path: string, flags: string | number, mode?: number): Promise<FileHandle>;
  /** Writes `buffers` at `position`; returns the bytes written (may be short — callers loop). */
  writev(fh: FileHandle, buffers: readonly Uint8Array[], position: number): Promise<number>;
  /** Writes `length` bytes of `buffer` from `offset` at file `position`; returns the bytes written. */
  write(
    fh: FileHandle,
    buffer: Uint8Array,
    offset: number,
    length: number,
    position: number,
  ): Promise<number>;
  /** Reads into `buffer`; returns the bytes read (0 at end of file). */
  read(fh: FileHandle, buffer: Uint8Array, offset: number, length: number, position: number): Promise<number>;
  datasync(fh: FileHandle): Promise<void>;
  sync(fh: FileHandle): Promise<void>;
  truncate(fh: FileHandle, length: number): Promise<void>;
  /** The file's current size (fstat). */
  size(fh: FileHandle): Promise<number>;
  close(fh: FileHandle): Promise<void>;
  rename(from: string, to: string): Promise<void>;
  unlink(path: string): Promise<void>;
  readdir(dir: string): Promise<string[]>;
  /** `mkdir -p`. */
  mkdir(dir: string): Promise<void>;
  /** Whether `path` exists (any file type). */
  exists(path: string): Promise<boolean>;
  /** fsync of a directory, so that creations, renames and deletions in it survive a crash. */
  syncDir(dir: string): Promise<void>;
}

export const nodeFsOps: FsOps = {
  open: (path, flags, mode) => fs.open(path, flags, mode),
  writev: async (fh, buffers, position) => (await fh.writev(buffers as Uint8Array[], position)).bytesWritten,
  write: async (fh, buffer, offset, length, position) =>
    (await fh.write(buffer, offset, length, position)).bytesWritten,
  read: async (fh, buffer, offset, length, position) =>
    (await fh.read(buffer, offset, length, position)).bytesRead,
  datasync: (fh) => fh.datasync(),
  sync: (fh) => fh.sync(),
  truncate: (fh, length) => fh.truncate(length),
  size: async (fh) => (await fh.stat()).size,
  close: (fh) => fh.close(),
  rename: (from, to) => fs.rename(from, to),
  unlink: (path) => fs.unlink(path),
  readdir: (dir) => fs.readdir(dir),
  mkdir: async (dir) => {
    await fs.mkdir(dir, { recursive: true });
  },
  exists: async (path) => {
    try {
      await fs.lstat(path);
      return true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return false;
      throw err;
    }
  },
  syncDir: async (dir) => {
    const fh = await fs.open(dir, "r");
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
  },
};

/** Reads exactly `length` bytes at `position`, looping over short reads; throws if the file ends first. */
export async function readFully(
  ops: FsOps,
  fh: FileHandle,
  path: string,
  buffer: Uint8Array,
  offset: number,
  length: number,
  position: number,
): Promise<void> {
  let done = 0;
  while (done < length) {
    const n = await ops.read(fh, buffer, offset + done, length - done, position + done);
    if (n === 0) {
      // The caller sized the read from fstat, so a short file means someone else shrank it under us.
      throw new StorageError("IO", `${path} ended at byte ${position + done} while reading`, path);
    }
    done += n;
  }
}
