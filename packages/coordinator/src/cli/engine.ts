import { fileURLToPath } from "node:url";
import { FatalError } from "./errors.js";

/**
 * Everything the coordinator needs to start one instance (one replica), after the CLI has merged the
 * registration with the command line (command-line values win, as in AMBROSIA).
 */
export interface CoordinatorLaunchOptions {
  instanceName: string;
  /** IC-to-IC listener port. */
  icPort: number;
  /** Port to listen on for the binding's messages (binding → IC). */
  receivePort: number;
  /** Port to listen on for the binding's connection that the IC sends on (IC → binding). */
  sendPort: number;
  /** Absolute log folder; the instance's files go in `<logDir>/<instanceName>_<version>/`. */
  logDir: string;
  logTriggerSizeMB: number;
  activeActive: boolean;
  /** 0 for the instance itself, ≥ 1 for a replica added with AddReplica. */
  replicaNum: number;
  /** Address to publish for other ICs (`--IPAddr`, else the registered host). */
  ipAddr?: string;
  /** Absolute folder of the registry the options came from; the IC writes its address and metadata there. */
  registryDir: string;
  createService: "A" | "N" | "Y";
  currentVersion: number;
  upgradeVersion: number;
  persistLogs: boolean;
  /** A divergence found while recovering is fatal instead of only reported (determinism checker). */
  strictDeterminism?: boolean;
  /** Checkpoints (with their logs) kept for recovery and time travel (default 2). */
  keepCheckpoints?: number;
  /** Turn the determinism checker off (no digests recorded, replays not checked). */
  noDeterminismDigests?: boolean;
}

/** `DebugInstance`: replay an instance's log from a checkpoint, for time-travel debugging or upgrade tests. */
export interface DebugLaunchOptions {
  instanceName: string;
  receivePort: number;
  sendPort: number;
  /** Absolute log folder (the one holding `<instanceName>_<currentVersion>/`). */
  logDir: string;
  /** Checkpoint to start from (replay begins at log file of the same number). */
  checkpoint: number;
  currentVersion: number;
  /** Send UpgradeService before replaying (what-if test of an upgrade). */
  testingUpgrade: boolean;
  /** Deliver records up to and including this sequence number, then stop delivering. */
  stopAt?: number;
  /** One record at a time, for exact input attribution of a divergence. */
  exact?: boolean;
}

/**
 * What `../coordinator.js` must export. Both functions print `Ready` / `Connected!` themselves, handle
 * SIGTERM/SIGINT, and resolve once the coordinator has stopped cleanly. They reject on a fatal condition; the CLI
 * then prints `FATAL ERROR: <message>` (or `FATAL ERROR <n>: <message>` if the error has a numeric `fatalCode`)
 * and exits with code 1.
 */
export interface CoordinatorEngine {
  runCoordinator(opts: CoordinatorLaunchOptions): Promise<void>;
  runDebugInstance(opts: DebugLaunchOptions): Promise<void>;
}

export type EngineLoader = () => Promise<CoordinatorEngine>;

function errorCode(e: unknown): string | undefined {
  if (typeof e === "object" && e !== null && "code" in e && typeof e.code === "string") return e.code;
  return undefined;
}

function isEngine(mod: unknown): mod is CoordinatorEngine {
  return (
    typeof mod === "object" &&
    mod !== null &&
    "runCoordinator" in mod &&
    typeof mod.runCoordinator === "function" &&
    "runDebugInstance" in mod &&
    typeof mod.runDebugInstance === "function"
  );
}

// Candidates for the engine module, relative to this file's compiled location: `../coordinator.js` from
// src/cli/ or dist/cli/, and `./coordinator.js` in case the bundler moved this code into a chunk at dist/.
const ENGINE_CANDIDATES = ["../coordinator.js", "./coordinator.js"];

/**
 * Loads the engine at run time. The specifier is computed, not a literal, on purpose: the engine is written
 * separately and may not exist yet, and a literal import would break the type check and the bundle until it does.
 */
export const loadEngine: EngineLoader = async () => {
  const tried: string[] = [];
  for (const candidate of ENGINE_CANDIDATES) {
    const url = new URL(candidate, import.meta.url);
    const path = fileURLToPath(url);
    let mod: unknown;
    try {
      mod = await import(url.href);
    } catch (e) {
      const message = e instanceof Error ? e.message : String(e);
      // Only "this very file is missing" means try the next candidate; a missing import *inside* the engine
      // (or any other error) is a broken engine and must be reported as such.
      const missing =
        (errorCode(e) === "ERR_MODULE_NOT_FOUND" || /cannot find module|failed to load url/i.test(message)) &&
        message.includes(path);
      if (missing) {
        tried.push(path);
        continue;
      }
      throw new FatalError(`the coordinator engine failed to load: ${message}`);
    }
    if (!isEngine(mod)) {
      throw new FatalError(
        `the coordinator engine at ${path} does not export runCoordinator and runDebugInstance`,
      );
    }
    return mod;
  }
  throw new FatalError(
    `the coordinator engine is not available in this build (looked for ${tried.join(" and ")})`,
  );
};
