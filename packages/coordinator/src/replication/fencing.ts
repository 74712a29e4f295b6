import { constants } from "node:fs";
import { readFile } from "node:fs/promises";
import path from "node:path";
import { errnoCode, type FsOps, logFileName, toStorageError } from "../storage/index.js";

/** Throws (a `LeaseLostError`) when this replica may no longer write; `what` names the guarded operation. */
export type Fence = (what: string) => void;

/**
 * The storage's file-system calls with every mutation fenced by the lease: a replica that lost (or never
 * held) the lease cannot write, sync, truncate, rename or delete anything in the shared log folder. The fence
 * runs before each call, and again after `datasync`: a commit is reported durable (so delivered to the binding
 * and acknowledged to its sender) only if the lease was still held once its bytes were on disk. Since a new
 * primary reads the log only after the old lease ran out, every acknowledged unit lies inside what it reads
 * (and seals); bytes a stalled old primary writes later lie past the seal, and nothing reads them.
 *
 * New log files are created exclusively (O_EXCL): a deposed primary rotating to `serverlog<N+1>` and the new
 * primary opening it cannot both succeed.
 */
export function fencedFsOps(base: FsOps, fence: Fence): FsOps {
  return {
    ...base,
    open: (file, flags, mode) => {
      const writes =
        typeof flags === "number" ? (flags & (constants.O_WRONLY | constants.O_RDWR)) !== 0 : flags !== "r";
      if (writes) fence(`opening ${path.basename(file)} for writing`);
      let f = flags;
      if (
        typeof f === "number" &&
        (f & constants.O_CREAT) !== 0 &&
        (f & constants.O_TRUNC) === 0 &&
        /^serverlog[0-9]+$/.test(path.basename(file))
      ) {
        f |= constants.O_EXCL;
      }
      return base.open(file, f, mode);
    },
    writev: (fh, buffers, position) => {
      fence("writing the log");
      return base.writev(fh, buffers, position);
    },
    write: (fh, buffer, offset, length, position) => {
      fence("writing");
      return base.write(fh, buffer, offset, length, position);
    },
    datasync: async (fh) => {
      fence("fdatasync of the log");
      await base.datasync(fh);
      fence("committing the log");
    },
    sync: async (fh) => {
      fence("fsync");
      await base.sync(fh);
      fence("fsync");
    },
    truncate: (fh, length) => {
      fence("truncating the log");
      return base.truncate(fh, length);
    },
    rename: (from, to) => {
      fence(`publishing ${path.basename(to)}`);
      return base.rename(from, to);
    },
    unlink: (file) => {
      fence(`deleting ${path.basename(file)}`);
      return base.unlink(file);
    },
  };
}

/**
 * Seals: `serverlog<N>.sealed` holds the length of log N that counts. A primary that takes over writes it for
 * the newest log it read (after repairing any torn tail) before it opens the next one, so whatever a deposed
 * primary appends to that file afterwards is never read, by standbys or by any later recovery.
 */
export function sealPath(dir: string, n: number): string {
  return path.join(dir, `${logFileName(n)}.sealed`);
}

export async function readSeal(dir: string, n: number): Promise<number | undefined> {
  try {
    const text = await readFile(sealPath(dir, n), "utf8");
    const v = Number(text.trim());
    return Number.isSafeInteger(v) && v >= 0 ? v : undefined;
  } catch (err) {
    if (errnoCode(err) === "ENOENT") return undefined;
    throw toStorageError(err, sealPath(dir, n), "read seal");
  }
}

/** Writes the seal durably (tmp, fsync, rename, directory fsync) through `ops`, hence fenced. */
export async function writeSeal(ops: FsOps, dir: string, n: number, length: number): Promise<void> {
  const file = sealPath(dir, n);
  const tmp = `${file}.tmp`;
  const fh = await ops.open(tmp, "w", 0o644);
  try {
    const bytes = Buffer.from(`${length}\n`);
    await ops.write(fh, bytes, 0, bytes.length, 0);
    await ops.sync(fh);
  } finally {
    await ops.close(fh);
  }
  await ops.rename(tmp, file);
  await ops.syncDir(dir);
}
