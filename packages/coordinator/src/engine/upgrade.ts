import { mkdir, open, readdir, rm, unlink } from "node:fs/promises";
import path from "node:path";
import type { Logger } from "pino";
import { FatalError } from "../cli/errors.js";
import type { Registry } from "../registry/index.js";
import { FileInstanceStorage, type InstanceStorage } from "../storage/index.js";

/**
 * Live upgrade (`--upgradeVersion` ≠ `--currentVersion`), the coordinator's half.
 *
 * The session recovers from `<log>/<instance>_<from>/` exactly as any recovery does (replay on the old code),
 * then sends UpgradeTakeCheckpoint instead of TakeBecomingPrimaryCheckpoint. The binding migrates its state,
 * switches handlers and answers with the upgraded checkpoint, which is written — streamed, fsynced, published by
 * rename — as checkpoint L+1 of `<log>/<instance>_<to>/` (AMBROSIA's numbering: log and checkpoint numbers
 * continue across the version folders, and so do sequence IDs, since the coordinator state in that checkpoint
 * carries the committer, the input watermarks and the unacknowledged outputs). The new log L+1 is opened there.
 *
 * **Commit point: the registration's `currentVersion` becoming `to`** (one atomic, fsynced file replace).
 * - Before it, nothing has been logged in either folder and nothing sent to a peer (the committer is paused and
 *   no link runs until the instance is primary), so a crash anywhere before it — even with the upgraded
 *   checkpoint already published — leaves the old version's folder as the truth: the next start sees the
 *   marker file in the new folder, wipes that folder and performs the upgrade again.
 * - After it, the new folder is the truth: a restart is an ordinary recovery of version `to` (the registration
 *   now says `currentVersion = upgradeVersion = to`). The old folder is kept, untouched, for what-if runs and
 *   as a record; delete it by hand when no longer wanted.
 * A downgrade is an upgrade to old code under a higher version number: versions only go up.
 */
export interface UpgradeTarget {
  readonly from: number;
  readonly to: number;
  /** Storage of `<log>/<instance>_<to>/`: the new log and the upgraded checkpoint go there. */
  readonly storage: InstanceStorage;
  /** Makes the upgrade durable once the upgraded checkpoint is published (the commit point, see above). */
  commit(): Promise<void>;
}

/** Present in a new version's folder from the moment an upgrade starts until it has committed. */
export const UPGRADE_MARKER = "UPGRADE_IN_PROGRESS";

/**
 * Fault injection for the crash tests: `IMMORTAL_UPGRADE_CRASH_AT=after-checkpoint` (upgraded checkpoint
 * published, registration not yet updated) or `after-commit` (registration updated, instance not yet primary)
 * makes the coordinator process SIGKILL itself at that step, which is what a power cut there would look like.
 */
function faultPoint(step: "after-checkpoint" | "after-commit", logger: Logger): void {
  if (process.env.IMMORTAL_UPGRADE_CRASH_AT !== step) return;
  logger.warn({ step }, "IMMORTAL_UPGRADE_CRASH_AT: killing this process");
  process.kill(process.pid, "SIGKILL");
}

async function syncDir(dir: string): Promise<void> {
  const h = await open(dir, "r");
  try {
    await h.sync();
  } finally {
    await h.close();
  }
}

async function entries(dir: string): Promise<string[] | undefined> {
  try {
    return await readdir(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw err;
  }
}

export interface UpgradeSetup {
  readonly instanceName: string;
  readonly logDir: string;
  readonly from: number;
  readonly to: number;
  readonly registry: Registry;
  readonly logger: Logger;
  /** Called after the commit point, so the coordinator's later sessions recover from the new folder. */
  readonly onCommitted: () => void;
}

/**
 * Checks that an upgrade can start and prepares the new folder: a folder left by an upgrade that crashed before
 * its commit point is wiped (it holds nothing that was ever acknowledged); a folder with a log but no marker is
 * a finished upgrade (or someone else's data) and is never touched.
 */
export async function prepareUpgrade(s: UpgradeSetup): Promise<UpgradeTarget> {
  const { from, to, logger } = s;
  if (to <= from) throw new FatalError(`upgrade version ${to} must be greater than current version ${from}`);
  const oldStorage = FileInstanceStorage.forInstance(s.logDir, s.instanceName, from);
  if ((await oldStorage.listCheckpoints()).length === 0) {
    throw new FatalError(
      `cannot upgrade "${s.instanceName}" from version ${from} to ${to}: ${oldStorage.dir} holds no checkpoint ` +
        `(nothing to upgrade; register without --upgradeVersion for a first start)`,
    );
  }
  const storage = FileInstanceStorage.forInstance(s.logDir, s.instanceName, to);
  const dir = storage.dir;
  const found = await entries(dir);
  if (found !== undefined && found.length > 0) {
    if (!found.includes(UPGRADE_MARKER)) {
      throw new FatalError(
        `cannot upgrade "${s.instanceName}" to version ${to}: ${dir} already holds files and no ${UPGRADE_MARKER} ` +
          `marker, so it is not a crashed upgrade; if the upgrade already happened, register with -cv ${to}`,
      );
    }
    logger.warn({ dir, files: found }, "removing the folder of an upgrade that crashed before committing");
    await rm(dir, { recursive: true, force: true });
    await syncDir(s.logDir);
  }
  await mkdir(dir, { recursive: true });
  const marker = await open(path.join(dir, UPGRADE_MARKER), "w");
  try {
    await marker.writeFile(`upgrading from version ${from} to ${to}\n`);
    await marker.sync();
  } finally {
    await marker.close();
  }
  await syncDir(dir);
  await syncDir(s.logDir);
  logger.info({ from, to, dir }, "live upgrade: replaying on the old code, then UpgradeTakeCheckpoint");
  return {
    from,
    to,
    storage,
    commit: async () => {
      faultPoint("after-checkpoint", logger);
      // The commit point: one atomic, fsynced replace of the registration.
      await s.registry.update(s.instanceName, (r) => {
        if (r === undefined)
          throw new FatalError(`instance "${s.instanceName}" was unregistered mid-upgrade`);
        if (r.currentVersion !== from) {
          throw new FatalError(
            `the registration of "${s.instanceName}" changed during the upgrade (current version ${r.currentVersion}, expected ${from})`,
          );
        }
        return { ...r, currentVersion: to, upgradeVersion: Math.max(r.upgradeVersion, to) };
      });
      s.onCommitted();
      faultPoint("after-commit", logger);
      await unlink(path.join(dir, UPGRADE_MARKER)).catch(() => undefined);
      await syncDir(dir).catch(() => undefined);
      await s.registry.updateMeta(s.instanceName, (m) => ({ ...m, currentVersion: to }));
      logger.info({ from, to, dir }, "live upgrade committed");
    },
  };
}

/** After a commit, a marker may remain if the process died right after the commit point; it means nothing then. */
export async function removeStaleMarker(dir: string): Promise<void> {
  await unlink(path.join(dir, UPGRADE_MARKER)).catch(() => undefined);
}

/**
 * AMBROSIA's "Version mismatch" (FATAL 1), for the mistake that would lose data silently: a registration that
 * names a version whose folder holds no checkpoint while another version's folder does (someone re-registered
 * `-cv 1` instead of `-cv 0 -uv 1`). Starting afresh there would restart sequence numbers that peers have
 * already seen, so the start is refused with what to do instead.
 */
export async function checkVersionFolders(logDir: string, instance: string, version: number): Promise<void> {
  const own = FileInstanceStorage.forInstance(logDir, instance, version);
  if ((await own.listCheckpoints()).length > 0) return;
  const prefix = `${instance}_`;
  for (const name of (await entries(logDir)) ?? []) {
    if (!name.startsWith(prefix) || !/^\d+$/.test(name.slice(prefix.length))) continue;
    const other = Number(name.slice(prefix.length));
    if (other === version) continue;
    const storage = FileInstanceStorage.forInstance(logDir, instance, other);
    if ((await storage.listCheckpoints()).length === 0) continue;
    throw new FatalError(
      `version mismatch: "${instance}" is registered at version ${version}, whose folder ${own.dir} holds no ` +
        `checkpoint, but ${storage.dir} holds version ${other}'s log; to upgrade, register with -cv ${other} ` +
        `-uv ${version}; to start afresh, remove ${storage.dir}`,
      1,
    );
  }
}
