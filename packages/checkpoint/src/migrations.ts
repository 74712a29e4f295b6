import {
  type DecodedCheckpoint,
  type ReadEnvelopeOptions,
  readEnvelope,
  readEnvelopeStream,
} from "./envelope.js";
import { MigrationError } from "./errors.js";
import type { ByteSource } from "./serializer.js";

/** Turns a state of version N into the same state at version N + 1. */
export type Migration = (state: unknown) => unknown;

export interface MigrationOptions {
  /** The app version this code works with. */
  readonly currentVersion: number;
  /**
   * Step functions keyed by the version they upgrade *from*: `migrations[3]` turns a v3 state into v4.
   * Every step between the stored and the current version must be present.
   */
  readonly migrations: Readonly<Record<number, Migration>>;
}

export interface MigratedCheckpoint extends DecodedCheckpoint {
  /** The version the checkpoint was written with, before migration. */
  readonly storedVersion: number;
}

/**
 * Applies `migrations[v]` for v = stored version, stored + 1, …, current − 1, in order. A state written by
 * a newer version (stored > current) is refused: downgrades would silently drop whatever the newer version
 * added.
 */
export function migrate(checkpoint: DecodedCheckpoint, options: MigrationOptions): MigratedCheckpoint {
  const { currentVersion, migrations } = options;
  const stored = checkpoint.appVersion;
  if (!Number.isInteger(currentVersion) || currentVersion < 0 || currentVersion > 0xffff_ffff) {
    throw new MigrationError(
      "BAD_VERSION",
      `currentVersion must be an integer in [0, 2^32), got ${currentVersion}`,
      stored,
    );
  }
  if (stored > currentVersion) {
    throw new MigrationError(
      "STATE_TOO_NEW",
      `checkpoint was written by app version ${stored}, newer than the running version ${currentVersion}`,
      stored,
    );
  }
  // Check every step exists before running any: a missing one is a deployment error best seen up front.
  for (let v = stored; v < currentVersion; v++) {
    if (typeof (Object.hasOwn(migrations, v) ? migrations[v] : undefined) !== "function") {
      throw new MigrationError("MISSING_MIGRATION", `no migration from version ${v} to ${v + 1}`, v);
    }
  }
  let value = checkpoint.value;
  for (let v = stored; v < currentVersion; v++) {
    try {
      value = migrations[v]!(value);
    } catch (e) {
      throw new MigrationError(
        "MIGRATION_FAILED",
        `migration from version ${v} to ${v + 1} threw: ${String(e)}`,
        v,
        {
          cause: e,
        },
      );
    }
  }
  return { ...checkpoint, appVersion: currentVersion, value, storedVersion: stored };
}

/** `readEnvelope` then `migrate`. */
export function decodeWithMigrations(
  bytes: Uint8Array,
  options: MigrationOptions & ReadEnvelopeOptions,
): MigratedCheckpoint {
  return migrate(readEnvelope(bytes, options), options);
}

/** `readEnvelopeStream` then `migrate`. */
export async function decodeStreamWithMigrations(
  source: ByteSource,
  options: MigrationOptions & ReadEnvelopeOptions,
): Promise<MigratedCheckpoint> {
  return migrate(await readEnvelopeStream(source, options), options);
}
