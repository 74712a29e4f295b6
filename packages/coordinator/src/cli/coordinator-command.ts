import { resolve } from "node:path";
import { RegistrationError } from "../registry/errors.js";
import type { InstanceRegistration, Registry } from "../registry/types.js";
import { checkDistinctPorts } from "../registry/validate.js";
import type { CoordinatorLaunchOptions, DebugLaunchOptions } from "./engine.js";
import { FatalError, UsageError } from "./errors.js";
import { COORDINATOR_OPTIONS, DEBUG_OPTIONS } from "./options.js";
import { type CommandSpec, type OptionValues, parseOptions } from "./parse.js";
import { ambrosiaDefaultLogDir, instanceNameFrom } from "./register-command.js";

export const IMMORTAL_COORDINATOR_COMMAND: CommandSpec = {
  name: "ImmortalCoordinator",
  summary:
    "Run the Immortal Coordinator for a registered instance. Options given here override the registration.",
  options: COORDINATOR_OPTIONS,
};

export const DEBUG_INSTANCE_COMMAND: CommandSpec = {
  name: "Ambrosia DebugInstance",
  summary:
    "Replay an instance's log from a checkpoint, read-only, to a binding started separately (time-travel " +
    "debugging; the binding may run under node --inspect).",
  options: DEBUG_OPTIONS,
};

/** The ImmortalCoordinator command line, checked; unset values come from the registration later. */
export interface CoordinatorArgs {
  instanceName: string;
  icPort?: number;
  receivePort?: number;
  sendPort?: number;
  logDir?: string;
  logTriggerSizeMB?: number;
  activeActive: boolean;
  replicaNum?: number;
  ipAddr?: string;
  strictDeterminism: boolean;
  noDeterminismDigests: boolean;
  keepCheckpoints?: number;
  /** Non-fatal remarks for stderr (options accepted for compatibility but ignored). */
  warnings: string[];
}

export function coordinatorArgsFromValues(values: OptionValues): CoordinatorArgs {
  const instanceName = instanceNameFrom(values);
  if (values.string("logStorageType") === "blobs") {
    throw new UsageError("--logStorageType (-lst) blobs is not supported yet; use files (the default)");
  }
  const warnings: string[] = [];
  for (const key of ["assemblyName", "assemblyClass"] as const) {
    if (values.has(key)) {
      warnings.push(
        `warning: --${key} is accepted for AMBROSIA compatibility but ignored (no .NET secure-stream descriptors; ` +
          "IC-to-IC TLS is configured separately)",
      );
    }
  }
  const args: CoordinatorArgs = {
    instanceName,
    activeActive: values.flag("activeActive"),
    strictDeterminism: values.flag("strictDeterminism"),
    noDeterminismDigests: values.flag("noDeterminismDigests"),
    warnings,
  };
  const set = <K extends keyof CoordinatorArgs>(key: K, value: CoordinatorArgs[K] | undefined): void => {
    if (value !== undefined) args[key] = value;
  };
  set("icPort", values.number("port"));
  set("receivePort", values.number("receivePort"));
  set("sendPort", values.number("sendPort"));
  set("logDir", values.string("log"));
  set("logTriggerSizeMB", values.number("logTriggerSize"));
  set("replicaNum", values.number("replicaNum"));
  set("ipAddr", values.string("IPAddr"));
  set("keepCheckpoints", values.number("keepCheckpoints"));
  return args;
}

/** Parses an ImmortalCoordinator command line. Throws HelpRequested for --help, UsageError for bad arguments. */
export function parseCoordinatorArgs(argv: readonly string[]): CoordinatorArgs {
  return coordinatorArgsFromValues(parseOptions(IMMORTAL_COORDINATOR_COMMAND, argv));
}

export interface ResolvedCoordinator {
  options: CoordinatorLaunchOptions;
  /** The registration the options were resolved against (the CLI reads pauseAtStart from it). */
  registration: InstanceRegistration;
}

/**
 * Merges the registration with the command line. AMBROSIA semantics: -rp/-sp/-l/-lts (and -p, -ip) override the
 * registered values; `-r` implies active/active; a replica uses its own registered ports and log folder.
 */
export async function resolveCoordinatorArgs(
  args: CoordinatorArgs,
  registry: Registry,
  cwd: string = process.cwd(),
): Promise<ResolvedCoordinator> {
  const reg = await registry.require(args.instanceName);
  const replicaNum = args.replicaNum ?? 0;
  if (replicaNum !== 0 && !reg.replicas.includes(replicaNum)) {
    throw new FatalError(
      `replica ${replicaNum} of instance "${reg.instanceName}" is not registered in ${registry.location}; ` +
        "add it with 'immortal add-replica' or 'Ambrosia AddReplica'",
    );
  }
  const replica = replicaNum === 0 ? {} : (reg.replicaOverrides[String(replicaNum)] ?? {});
  const icPort = args.icPort ?? replica.icPort ?? reg.icPort;
  if (icPort === undefined) {
    throw new UsageError(
      `no IC-to-IC port for instance "${reg.instanceName}": pass --port (-p), ` +
        "or register one with 'immortal register --port'",
    );
  }
  const receivePort = args.receivePort ?? replica.receivePort ?? reg.receivePort;
  const sendPort = args.sendPort ?? replica.sendPort ?? reg.sendPort;
  try {
    checkDistinctPorts(
      [
        ["the IC-to-IC port", icPort],
        ["the receive port", receivePort],
        ["the send port", sendPort],
      ],
      `instance "${reg.instanceName}"`,
    );
  } catch (e) {
    if (e instanceof RegistrationError) throw new UsageError(e.message);
    throw e;
  }
  const options: CoordinatorLaunchOptions = {
    instanceName: reg.instanceName,
    icPort,
    receivePort,
    sendPort,
    logDir: resolve(cwd, args.logDir ?? replica.logDir ?? reg.logDir),
    logTriggerSizeMB: args.logTriggerSizeMB ?? reg.logTriggerSizeMB,
    // AMBROSIA: `-r` sets active/active whatever its value; the registration can also ask for it.
    activeActive: args.activeActive || args.replicaNum !== undefined || reg.activeActive,
    replicaNum,
    ipAddr: args.ipAddr ?? replica.host ?? reg.host,
    registryDir: registry.location,
    createService: reg.createService,
    currentVersion: reg.currentVersion,
    upgradeVersion: reg.upgradeVersion,
    persistLogs: reg.persistLogs,
    ...(args.strictDeterminism ? { strictDeterminism: true } : {}),
    ...(args.noDeterminismDigests ? { noDeterminismDigests: true } : {}),
    ...(args.keepCheckpoints !== undefined ? { keepCheckpoints: args.keepCheckpoints } : {}),
  };
  return { options, registration: reg };
}

/**
 * The whole ImmortalCoordinator front end without launching anything: parse `argv` (AMBROSIA syntax) and merge
 * it with the registration in `registry`. Throws HelpRequested, UsageError (bad arguments), UnknownInstanceError
 * or FatalError (not registered).
 */
export async function resolveCoordinatorOptions(
  argv: readonly string[],
  registry: Registry,
  cwd: string = process.cwd(),
): Promise<CoordinatorLaunchOptions> {
  return (await resolveCoordinatorArgs(parseCoordinatorArgs(argv), registry, cwd)).options;
}

/** The DebugInstance command line, checked. */
export interface DebugArgs {
  instanceName: string;
  receivePort?: number;
  sendPort?: number;
  logDir?: string;
  checkpoint: number;
  currentVersion: number;
  testingUpgrade: boolean;
  stopAt?: number;
  exact: boolean;
}

export function debugArgsFromValues(values: OptionValues): DebugArgs {
  const args: DebugArgs = {
    instanceName: instanceNameFrom(values),
    checkpoint: values.number("checkpoint") ?? 1,
    currentVersion: values.number("currentVersion") ?? 0,
    testingUpgrade: values.flag("testingUpgrade"),
    exact: values.flag("exact"),
  };
  const receivePort = values.number("receivePort");
  const sendPort = values.number("sendPort");
  const log = values.string("log");
  const stopAt = values.number("stopAt");
  if (stopAt !== undefined) args.stopAt = stopAt;
  if (receivePort !== undefined) args.receivePort = receivePort;
  if (sendPort !== undefined) args.sendPort = sendPort;
  if (log !== undefined) args.logDir = log;
  return args;
}

export function parseDebugArgs(argv: readonly string[]): DebugArgs {
  return debugArgsFromValues(parseOptions(DEBUG_INSTANCE_COMMAND, argv));
}

/**
 * DebugInstance needs no registration (AMBROSIA runs it without Azure): ports and log folder come from the
 * command line, and fall back to the registration only when the instance happens to be registered.
 */
export async function resolveDebugArgs(
  args: DebugArgs,
  registry: Registry,
  cwd: string = process.cwd(),
): Promise<DebugLaunchOptions> {
  const needRegistry =
    args.receivePort === undefined || args.sendPort === undefined || args.logDir === undefined;
  const reg = needRegistry ? await registry.get(args.instanceName) : undefined;
  const missing = (what: string): never => {
    throw new UsageError(
      `missing required option ${what} (instance "${args.instanceName}" is not registered in ${registry.location}, ` +
        "so there is no registered value)",
    );
  };
  const receivePort = args.receivePort ?? reg?.receivePort ?? missing("--receivePort (-rp)");
  const sendPort = args.sendPort ?? reg?.sendPort ?? missing("--sendPort (-sp)");
  if (receivePort === sendPort) {
    throw new UsageError(`the receive port and the send port are both ${receivePort}; they must differ`);
  }
  return {
    instanceName: args.instanceName,
    receivePort,
    sendPort,
    logDir: resolve(cwd, args.logDir ?? reg?.logDir ?? ambrosiaDefaultLogDir(cwd)),
    checkpoint: args.checkpoint,
    currentVersion: args.currentVersion,
    testingUpgrade: args.testingUpgrade,
    ...(args.stopAt !== undefined ? { stopAt: args.stopAt } : {}),
    ...(args.exact ? { exact: true } : {}),
  };
}

/** Parse and resolve a DebugInstance command line without launching anything. */
export async function resolveDebugOptions(
  argv: readonly string[],
  registry: Registry,
  cwd: string = process.cwd(),
): Promise<DebugLaunchOptions> {
  return resolveDebugArgs(parseDebugArgs(argv), registry, cwd);
}
