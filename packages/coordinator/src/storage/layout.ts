import * as path from "node:path";
import { StorageError } from "./errors.js";

/**
 * AMBROSIA's on-disk names (its tools and tests look for them): one directory per instance and version,
 * `serverlog<N>` and `serverchkpt<N>` inside, N from 1. Checkpoint N is the state at the start of log N.
 */
export const LOG_FILE_PREFIX = "serverlog";
export const CHECKPOINT_FILE_PREFIX = "serverchkpt";
/**
 * Not AMBROSIA's: the determinism checker's record of the outputs produced while log N was current (hashes of
 * each outgoing fork, see src/determinism/). Numbered like the logs, so retention deletes it with its log.
 */
export const DIGEST_FILE_PREFIX = "serverdigest";
/** Suffix of a checkpoint still being written; it becomes visible only by an atomic rename. */
export const TEMP_SUFFIX = ".tmp";

const LOG_RE = /^serverlog([1-9][0-9]*)$/;
const CHECKPOINT_RE = /^serverchkpt([1-9][0-9]*)$/;
const TEMP_CHECKPOINT_RE = /^serverchkpt([1-9][0-9]*)\.tmp$/;
const DIGEST_RE = /^serverdigest([1-9][0-9]*)$/;
/** Active/active: the length of a log that counts, written by a primary that took over (see replication/). */
const LOG_SEAL_RE = /^serverlog([1-9][0-9]*)\.sealed$/;

/**
 * `<logDir>/<instance>_<version>`. AMBROSIA concatenates strings; we join paths, which is the same when
 * `logDir` ends with a separator (AMBROSIA requires that) and forgiving when it does not.
 */
export function instanceDirectory(logDir: string, instance: string, version: number): string {
  if (instance.length === 0 || /[/\\\0]/.test(instance) || instance === "." || instance === "..") {
    throw new StorageError(
      "INVALID_ARGUMENT",
      `instance name ${JSON.stringify(instance)} cannot name a directory`,
    );
  }
  if (!Number.isSafeInteger(version) || version < 0) {
    throw new StorageError("INVALID_ARGUMENT", `version ${version} must be a non-negative integer`);
  }
  return path.join(logDir, `${instance}_${version}`);
}

export function logFileName(n: number): string {
  checkFileNumber(n);
  return `${LOG_FILE_PREFIX}${n}`;
}

export function checkpointFileName(n: number): string {
  checkFileNumber(n);
  return `${CHECKPOINT_FILE_PREFIX}${n}`;
}

export function digestFileName(n: number): string {
  checkFileNumber(n);
  return `${DIGEST_FILE_PREFIX}${n}`;
}

export type StorageFileKind = "log" | "checkpoint" | "checkpoint-tmp" | "digest" | "log-seal";

/** Classifies a directory entry; anything that is not one of our names is `undefined` and left alone. */
export function parseStorageFileName(name: string): { kind: StorageFileKind; n: number } | undefined {
  let m = LOG_RE.exec(name);
  if (m) return { kind: "log", n: Number(m[1]) };
  m = CHECKPOINT_RE.exec(name);
  if (m) return { kind: "checkpoint", n: Number(m[1]) };
  m = TEMP_CHECKPOINT_RE.exec(name);
  if (m) return { kind: "checkpoint-tmp", n: Number(m[1]) };
  m = DIGEST_RE.exec(name);
  if (m) return { kind: "digest", n: Number(m[1]) };
  m = LOG_SEAL_RE.exec(name);
  if (m) return { kind: "log-seal", n: Number(m[1]) };
  return undefined;
}

function checkFileNumber(n: number): void {
  if (!Number.isSafeInteger(n) || n < 1) {
    throw new StorageError("INVALID_ARGUMENT", `file number ${n} must be an integer ≥ 1`);
  }
}
