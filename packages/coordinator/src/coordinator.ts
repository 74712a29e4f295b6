import { rm } from "node:fs/promises";
import path from "node:path";
import type { CoordinatorLaunchOptions, DebugLaunchOptions } from "./cli/engine.js";
import { Coordinator, type CoordinatorConfig, FatalError } from "./engine/coordinator.js";
import { FolderRegistry } from "./registry/index.js";
import { FileInstanceStorage } from "./storage/index.js";

export {
  Coordinator,
  type CoordinatorConfig,
  type CoordinatorLaunchOptions,
  type DebugLaunchOptions,
  FatalError,
};

/**
 * Starts a coordinator in this process and returns it (the in-process mode used by the SDK's dev loop and by
 * tests): the same code as the `ImmortalCoordinator` executable, minus process-level signal handling.
 */
export async function startCoordinator(config: CoordinatorConfig): Promise<Coordinator> {
  const c = new Coordinator(config);
  try {
    await c.start();
  } catch (err) {
    await c.stop();
    throw err;
  }
  return c;
}

/** Rejects options this build cannot honour, with the reason, instead of silently ignoring them. */
function unsupported(o: CoordinatorLaunchOptions): string | undefined {
  if (o.activeActive && o.createService === "N")
    return "createService=N (always start fresh) would delete the log the active/active replicas share";
  // A standby replays the current version's folder while the primary would move to another one.
  if (o.activeActive && o.upgradeVersion !== o.currentVersion)
    return "live upgrade of an active/active instance is not supported by this build yet";
  return undefined;
}

/**
 * The executable's entry: runs until SIGTERM/SIGINT and then resolves, or rejects with a `FatalError` (the CLI
 * prints it as `FATAL ERROR: …` and exits non-zero).
 */
export async function runCoordinator(o: CoordinatorLaunchOptions): Promise<void> {
  const why = unsupported(o);
  if (why !== undefined) throw new FatalError(why);
  if (!o.persistLogs) {
    process.stderr.write("warning: --noPersistLogs is ignored: this coordinator always logs durably\n");
  }
  const registry = FolderRegistry.open({ dir: o.registryDir });
  const storage = FileInstanceStorage.forInstance(o.logDir, o.instanceName, o.currentVersion);
  if (o.createService === "N") {
    // AMBROSIA's "no recovery": every start is a first start.
    await rm(storage.dir, { recursive: true, force: true });
  } else if (o.createService === "Y" && (await storage.listCheckpoints()).length === 0) {
    throw new FatalError(
      `createService=Y (always recover) but ${path.join(storage.dir, "serverchkpt*")} has no checkpoint`,
    );
  }
  let failed: (err: Error) => void = () => {};
  const fatal = new Promise<never>((_, reject) => {
    failed = reject;
  });
  const coordinator = await startCoordinator({
    instanceName: o.instanceName,
    registry,
    icPort: o.icPort,
    host: o.ipAddr,
    receivePort: o.receivePort,
    sendPort: o.sendPort,
    logDir: o.logDir,
    currentVersion: o.currentVersion,
    upgradeVersion: o.upgradeVersion,
    logTriggerSizeMB: o.logTriggerSizeMB,
    strictDeterminism: o.strictDeterminism === true,
    determinism: o.noDeterminismDigests !== true,
    ...(o.keepCheckpoints !== undefined ? { keepCheckpoints: o.keepCheckpoints } : {}),
    activeActive: o.activeActive,
    replicaNum: o.replicaNum,
    onFatal: (err) => failed(err),
  });
  const stopped = new Promise<void>((resolve) => {
    const shutdown = (signal: string) => {
      coordinator.logger.info({ signal }, "stopping");
      void coordinator.stop().then(resolve);
    };
    process.once("SIGTERM", () => shutdown("SIGTERM"));
    process.once("SIGINT", () => shutdown("SIGINT"));
  });
  await Promise.race([stopped, fatal]);
}

/** `Ambrosia DebugInstance` / `immortal debug`: time-travel replay (src/repro). */
export { runDebugInstance } from "./repro/index.js";
