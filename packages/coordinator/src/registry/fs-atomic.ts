import { randomBytes, randomUUID } from "node:crypto";
import { mkdir, open, readFile, rename, rm, stat, unlink } from "node:fs/promises";
import { hostname } from "node:os";
import { basename, dirname, join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { RegistryLockTimeoutError } from "./errors.js";

function errorCode(e: unknown): string | undefined {
  if (typeof e === "object" && e !== null && "code" in e && typeof e.code === "string") return e.code;
  return undefined;
}

/**
 * Makes a rename (or unlink) in `dir` durable. Windows cannot open a directory for fsync, and some file systems
 * refuse it; there the rename is as durable as the platform makes it, which is all we can do.
 */
async function fsyncDir(dir: string): Promise<void> {
  let handle: Awaited<ReturnType<typeof open>> | undefined;
  try {
    handle = await open(dir, "r");
    await handle.sync();
  } catch (e) {
    const code = errorCode(e);
    if (code !== "EISDIR" && code !== "EPERM" && code !== "EINVAL" && code !== "EBADF" && code !== "EACCES") {
      throw e;
    }
  } finally {
    await handle?.close();
  }
}

/**
 * Replaces `path` with `data` so that a reader (or a crash) sees either the old or the new content, never a
 * mix: write a temp file in the same folder (rename is only atomic within a file system), fsync it, rename it
 * over the target, then fsync the folder so the rename itself survives a power loss.
 */
export async function writeFileAtomic(path: string, data: string): Promise<void> {
  const dir = dirname(path);
  await mkdir(dir, { recursive: true });
  // Leading dot: listings skip it, and instance names cannot start with one, so it never collides.
  const tmp = join(dir, `.${basename(path)}.${process.pid}.${randomBytes(6).toString("hex")}.tmp`);
  const handle = await open(tmp, "wx");
  try {
    await handle.writeFile(data, "utf8");
    await handle.sync();
  } finally {
    await handle.close();
  }
  try {
    await rename(tmp, path);
  } catch (e) {
    await rm(tmp, { force: true });
    throw e;
  }
  await fsyncDir(dir);
}

/** Removes `path` durably; false when it did not exist. */
export async function unlinkDurable(path: string): Promise<boolean> {
  try {
    await unlink(path);
  } catch (e) {
    if (errorCode(e) === "ENOENT") return false;
    throw e;
  }
  await fsyncDir(dirname(path));
  return true;
}

/** Parsed JSON of `path`, or undefined when the file does not exist. */
export async function readJsonFile(
  path: string,
): Promise<{ value: unknown } | { error: string } | undefined> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (e) {
    if (errorCode(e) === "ENOENT") return undefined;
    throw e;
  }
  try {
    return { value: JSON.parse(text) as unknown };
  } catch (e) {
    return { error: e instanceof Error ? e.message : String(e) };
  }
}

export interface FileLockOptions {
  /** Give up (RegistryLockTimeoutError) after this long. Default 15 s. */
  timeoutMs?: number;
  /**
   * A lock older than this is broken even if its holder's pid is alive: registry locks are held for
   * milliseconds, so an old one means the pid was reused or the holder is on another host. Default 30 s.
   */
  staleMs?: number;
}

const DEFAULT_LOCK_TIMEOUT_MS = 15_000;
const DEFAULT_STALE_MS = 30_000;
/** A stale-lock breaker holds its own lock for microseconds; one older than this died while breaking. */
const BREAKER_STALE_MS = 5_000;

interface LockHolder {
  pid?: number;
  host?: string;
  token?: string;
  /** Identity of the lock file we looked at, so a breaker removes that file and not a newer one. */
  identity: string;
  ageMs: number;
  describe: string;
}

async function readHolder(lockPath: string): Promise<LockHolder | undefined> {
  let st: Awaited<ReturnType<typeof stat>>;
  let text: string;
  try {
    st = await stat(lockPath);
    text = await readFile(lockPath, "utf8");
  } catch (e) {
    if (errorCode(e) === "ENOENT") return undefined;
    throw e;
  }
  let pid: number | undefined;
  let host: string | undefined;
  let token: string | undefined;
  try {
    const parsed: unknown = JSON.parse(text);
    if (typeof parsed === "object" && parsed !== null) {
      if ("pid" in parsed && typeof parsed.pid === "number") pid = parsed.pid;
      if ("host" in parsed && typeof parsed.host === "string") host = parsed.host;
      if ("token" in parsed && typeof parsed.token === "string") token = parsed.token;
    }
  } catch {
    // Empty or partial: the holder is between creating the file and writing its owner. Judged by age only.
  }
  const ageMs = Math.max(0, Date.now() - st.mtimeMs);
  return {
    pid,
    host,
    token,
    identity: `${st.ino}:${st.mtimeMs}:${token ?? ""}`,
    ageMs,
    describe: pid === undefined ? "an unknown process" : `pid ${pid} on ${host ?? "an unknown host"}`,
  };
}

function pidIsAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    // EPERM: the process exists but belongs to someone else.
    return errorCode(e) === "EPERM";
  }
}

function isStale(holder: LockHolder, staleMs: number): boolean {
  if (holder.ageMs > staleMs) return true;
  if (holder.pid !== undefined && holder.host === hostname()) return !pidIsAlive(holder.pid);
  return false;
}

/**
 * Removes a stale lock without racing another breaker: two processes that both saw the same dead holder must
 * not both unlink, or the second would remove the fresh lock the first one just took. So breaking happens under
 * a second, short-lived lock, and only if the lock file is still the one judged stale.
 */
async function breakStaleLock(lockPath: string, stale: LockHolder): Promise<void> {
  const breakerPath = `${lockPath}.break`;
  try {
    const handle = await open(breakerPath, "wx");
    await handle.close();
  } catch (e) {
    if (errorCode(e) !== "EEXIST") throw e;
    try {
      const st = await stat(breakerPath);
      if (Date.now() - st.mtimeMs > BREAKER_STALE_MS) await unlink(breakerPath);
    } catch (inner) {
      if (errorCode(inner) !== "ENOENT") throw inner;
    }
    return;
  }
  try {
    const now = await readHolder(lockPath);
    if (now !== undefined && now.identity === stale.identity) await unlinkDurable(lockPath);
  } finally {
    await rm(breakerPath, { force: true });
  }
}

/**
 * Runs `fn` while holding an exclusive lock file, across processes: the lock is a file created with
 * O_CREAT|O_EXCL holding the owner's pid, host and a random token. A lock whose owner died (dead pid on this
 * host) or that is older than `staleMs` is broken, so a crashed writer never blocks the registry for good.
 */
export async function withFileLock<T>(
  lockPath: string,
  fn: () => Promise<T>,
  opts: FileLockOptions = {},
): Promise<T> {
  const timeoutMs = opts.timeoutMs ?? DEFAULT_LOCK_TIMEOUT_MS;
  const staleMs = opts.staleMs ?? DEFAULT_STALE_MS;
  const token = randomUUID();
  const content = JSON.stringify({
    pid: process.pid,
    host: hostname(),
    token,
    acquiredAt: new Date().toISOString(),
  });
  const start = Date.now();
  let delayMs = 1;
  for (;;) {
    try {
      const handle = await open(lockPath, "wx");
      try {
        await handle.writeFile(content, "utf8");
      } finally {
        await handle.close();
      }
      break;
    } catch (e) {
      const code = errorCode(e);
      if (code === "ENOENT") {
        await mkdir(dirname(lockPath), { recursive: true });
        continue;
      }
      if (code !== "EEXIST") throw e;
    }
    const holder = await readHolder(lockPath);
    if (holder === undefined) continue; // released between our open and our read: try again at once
    if (isStale(holder, staleMs)) {
      await breakStaleLock(lockPath, holder);
      continue;
    }
    const waited = Date.now() - start;
    if (waited >= timeoutMs) throw new RegistryLockTimeoutError(lockPath, waited, holder.describe);
    // Jittered exponential backoff: contenders spread out instead of retrying in lockstep.
    await sleep(delayMs + Math.random() * delayMs);
    delayMs = Math.min(delayMs * 2, 20);
  }
  try {
    return await fn();
  } finally {
    await releaseLock(lockPath, token);
  }
}

async function releaseLock(lockPath: string, token: string): Promise<void> {
  const holder = await readHolder(lockPath);
  // Only remove our own lock: if it was broken as stale (we stalled past staleMs) the file may be another's now.
  if (holder?.token === token) {
    try {
      await unlink(lockPath);
    } catch (e) {
      if (errorCode(e) !== "ENOENT") throw e;
    }
  }
}
