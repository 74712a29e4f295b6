import { join, parse, resolve } from "node:path";
import { RegistrationError } from "../registry/errors.js";
import type {
  CreateServiceMode,
  InstanceRegistration,
  Registry,
  ReplicaOverrides,
} from "../registry/types.js";
import {
  checkDistinctPorts,
  createRegistration,
  validateCreateService,
  validateInstanceName,
} from "../registry/validate.js";
import { UsageError } from "./errors.js";
import { type OptionSpec, optionLabel } from "./options.js";
import type { OptionValues } from "./parse.js";

/** AMBROSIA's RegisterInstance default for --logTriggerSize (the project's own default is 1024). */
export const AMBROSIA_LOG_TRIGGER_SIZE_MB = 1000;

/**
 * AMBROSIA's default log folder: `AmbrosiaLogs` at the root of the current directory's drive (`/AmbrosiaLogs`
 * on Unix, `C:\AmbrosiaLogs` on Windows).
 */
export function ambrosiaDefaultLogDir(cwd: string): string {
  return join(parse(resolve(cwd)).root, "AmbrosiaLogs");
}

/** What RegisterInstance / `immortal register` asks for, checked. */
export interface RegisterArgs {
  instanceName: string;
  receivePort: number;
  sendPort: number;
  /** Absolute. */
  logDir: string;
  createService: CreateServiceMode;
  pauseAtStart: boolean;
  persistLogs: boolean;
  logTriggerSizeMB: number;
  activeActive: boolean;
  currentVersion: number;
  upgradeVersion: number;
  icPort?: number;
  host?: string;
}

export interface RegisterDefaults {
  logTriggerSizeMB: number;
  cwd: string;
}

/** Reports a registration-rule violation as a bad argument (exit code 2), naming the option. */
function asUsage<T>(fn: () => T, spec?: OptionSpec, value?: string): T {
  try {
    return fn();
  } catch (e) {
    if (e instanceof RegistrationError) {
      const prefix = spec === undefined ? "" : `invalid value "${value ?? ""}" for ${optionLabel(spec)}: `;
      throw new UsageError(`${prefix}${e.message}`);
    }
    throw e;
  }
}

const NAME_SPEC: OptionSpec = { key: "instanceName", aliases: ["i"], kind: "string", description: "" };

/** The instance name option, checked against the registry's naming rules. */
export function instanceNameFrom(values: OptionValues): string {
  const name = values.string("instanceName");
  if (name === undefined) throw new UsageError(`missing required option ${optionLabel(NAME_SPEC)}`);
  return asUsage(() => validateInstanceName(name), NAME_SPEC, name);
}

function checkVersions(currentVersion: number, upgradeVersion: number): void {
  if (currentVersion > upgradeVersion) {
    throw new UsageError(
      `--currentVersion (-cv) ${currentVersion} is greater than --upgradeVersion (-uv) ${upgradeVersion}; ` +
        "the upgrade version must be at least the current version",
    );
  }
}

function checkPorts(ports: ReadonlyArray<readonly [string, number | undefined]>, name: string): void {
  asUsage(() => checkDistinctPorts(ports, `instance "${name}"`));
}

/** Turns checked option values into RegisterArgs, applying AMBROSIA's defaults and cross-field rules. */
export function registerArgsFromValues(values: OptionValues, defaults: RegisterDefaults): RegisterArgs {
  const instanceName = instanceNameFrom(values);
  const receivePort = values.number("receivePort");
  const sendPort = values.number("sendPort");
  if (receivePort === undefined) throw new UsageError("missing required option --receivePort (-rp)");
  if (sendPort === undefined) throw new UsageError("missing required option --sendPort (-sp)");
  const icPort = values.number("port");
  checkPorts(
    [
      ["--receivePort (-rp)", receivePort],
      ["--sendPort (-sp)", sendPort],
      ["--port (-p)", icPort],
    ],
    instanceName,
  );
  const currentVersion = values.number("currentVersion") ?? 0;
  // AMBROSIA: an absent upgrade version means "no upgrade pending", i.e. equal to the current version.
  const upgradeVersion = values.number("upgradeVersion") ?? currentVersion;
  checkVersions(currentVersion, upgradeVersion);
  const args: RegisterArgs = {
    instanceName,
    receivePort,
    sendPort,
    logDir: resolve(defaults.cwd, values.string("log") ?? ambrosiaDefaultLogDir(defaults.cwd)),
    createService: validateCreateService(values.string("createService") ?? "A"),
    pauseAtStart: values.flag("pauseAtStart"),
    persistLogs: !values.flag("noPersistLogs"),
    logTriggerSizeMB: values.number("logTriggerSize") ?? defaults.logTriggerSizeMB,
    activeActive: values.flag("activeActive"),
    currentVersion,
    upgradeVersion,
  };
  if (icPort !== undefined) args.icPort = icPort;
  const host = values.string("host");
  if (host !== undefined) args.host = host;
  return args;
}

export interface RegisterResult {
  registration: InstanceRegistration;
  /** False when an existing registration was replaced (its identity, replicas, IC port and host are kept). */
  created: boolean;
}

/**
 * Registers (or re-registers) an instance. Re-registration replaces every setting RegisterInstance can express,
 * as in AMBROSIA, but keeps the registration's identity (peers recognise the same instance), its replicas, and
 * the IC port and host unless given again (AMBROSIA's RegisterInstance cannot express those two).
 */
export async function registerInstance(args: RegisterArgs, registry: Registry): Promise<RegisterResult> {
  let created = false;
  const stored = await registry.update(args.instanceName, (current) => {
    const settings = {
      receivePort: args.receivePort,
      sendPort: args.sendPort,
      logDir: args.logDir,
      createService: args.createService,
      pauseAtStart: args.pauseAtStart,
      persistLogs: args.persistLogs,
      logTriggerSizeMB: args.logTriggerSizeMB,
      currentVersion: args.currentVersion,
      upgradeVersion: args.upgradeVersion,
    };
    if (current === undefined) {
      created = true;
      return createRegistration({
        instanceName: args.instanceName,
        ...settings,
        activeActive: args.activeActive,
        icPort: args.icPort,
        host: args.host,
      });
    }
    return {
      ...current,
      ...settings,
      // Replicas exist only in active/active mode; re-registering must not silently turn that off.
      activeActive: args.activeActive || current.replicas.length > 0,
      icPort: args.icPort ?? current.icPort,
      host: args.host ?? current.host,
    };
  });
  if (stored === undefined) throw new Error(`registration of "${args.instanceName}" was not stored`);
  return { registration: stored, created };
}

/** AddReplica: the replica number plus whatever of the registration options were given. */
export interface AddReplicaArgs {
  instanceName: string;
  replicaNum: number;
  /** The instance-level settings, used only when the instance is not registered yet. */
  register: Omit<RegisterArgs, "receivePort" | "sendPort" | "activeActive"> & {
    receivePort?: number;
    sendPort?: number;
  };
  /** The replica's own settings (ports, log folder, IC port, host) that were given. */
  overrides: ReplicaOverrides;
  /** Long names of instance-level options that were given; ignored (with a warning) for an existing instance. */
  instanceOptionsGiven: string[];
}

const INSTANCE_LEVEL_KEYS = [
  "createService",
  "pauseAtStart",
  "noPersistLogs",
  "logTriggerSize",
  "currentVersion",
  "upgradeVersion",
] as const;

export function addReplicaArgsFromValues(values: OptionValues, defaults: RegisterDefaults): AddReplicaArgs {
  const instanceName = instanceNameFrom(values);
  const replicaNum = values.number("replicaNum");
  if (replicaNum === undefined) throw new UsageError("missing required option --replicaNum (-r)");
  if (replicaNum === 0) {
    throw new UsageError(
      "--replicaNum (-r) must not be 0: replica 0 is the instance itself (use RegisterInstance)",
    );
  }
  if (replicaNum < 0) throw new UsageError(`--replicaNum (-r) must be a positive integer, got ${replicaNum}`);
  const receivePort = values.number("receivePort");
  const sendPort = values.number("sendPort");
  const icPort = values.number("port");
  checkPorts(
    [
      ["--receivePort (-rp)", receivePort],
      ["--sendPort (-sp)", sendPort],
      ["--port (-p)", icPort],
    ],
    instanceName,
  );
  const currentVersion = values.number("currentVersion") ?? 0;
  const upgradeVersion = values.number("upgradeVersion") ?? currentVersion;
  checkVersions(currentVersion, upgradeVersion);
  const log = values.string("log");
  const logDir = log === undefined ? undefined : resolve(defaults.cwd, log);
  const host = values.string("host");
  const overrides: ReplicaOverrides = {};
  if (receivePort !== undefined) overrides.receivePort = receivePort;
  if (sendPort !== undefined) overrides.sendPort = sendPort;
  if (icPort !== undefined) overrides.icPort = icPort;
  if (logDir !== undefined) overrides.logDir = logDir;
  if (host !== undefined) overrides.host = host;
  return {
    instanceName,
    replicaNum,
    register: {
      instanceName,
      receivePort,
      sendPort,
      logDir: logDir ?? ambrosiaDefaultLogDir(defaults.cwd),
      createService: validateCreateService(values.string("createService") ?? "A"),
      pauseAtStart: values.flag("pauseAtStart"),
      persistLogs: !values.flag("noPersistLogs"),
      logTriggerSizeMB: values.number("logTriggerSize") ?? defaults.logTriggerSizeMB,
      currentVersion,
      upgradeVersion,
      icPort,
      host,
    },
    overrides,
    instanceOptionsGiven: INSTANCE_LEVEL_KEYS.filter((k) => values.has(k)),
  };
}

export interface AddReplicaResult {
  registration: InstanceRegistration;
  /** True when AddReplica had to create the instance's registration. */
  createdInstance: boolean;
  /** Instance-level options that were given but not applied (the instance already existed). */
  ignored: string[];
}

/**
 * Adds (or re-adds) a replica: lists it, records its own ports and log folder when given (replicas usually
 * share a machine in tests, so they need their own ports, as AMBROSIA registers each replica separately), and
 * switches the instance to active/active. An instance that is not registered yet is registered from the same
 * options, which then need -rp and -sp.
 */
export async function addReplica(args: AddReplicaArgs, registry: Registry): Promise<AddReplicaResult> {
  let createdInstance = false;
  const stored = await registry.update(args.instanceName, (current) => {
    const key = String(args.replicaNum);
    if (current === undefined) {
      const { receivePort, sendPort } = args.register;
      if (receivePort === undefined || sendPort === undefined) {
        throw new UsageError(
          `instance "${args.instanceName}" is not registered yet, so --receivePort (-rp) and --sendPort (-sp) are required`,
        );
      }
      createdInstance = true;
      return createRegistration({
        ...args.register,
        receivePort,
        sendPort,
        activeActive: true,
        replicas: [args.replicaNum],
      });
    }
    const replicas = current.replicas.includes(args.replicaNum)
      ? current.replicas
      : [...current.replicas, args.replicaNum];
    const replicaOverrides = { ...current.replicaOverrides };
    if (Object.keys(args.overrides).length > 0) replicaOverrides[key] = { ...args.overrides };
    else delete replicaOverrides[key];
    return { ...current, activeActive: true, replicas, replicaOverrides };
  });
  if (stored === undefined)
    throw new Error(`replica ${args.replicaNum} of "${args.instanceName}" was not stored`);
  return { registration: stored, createdInstance, ignored: createdInstance ? [] : args.instanceOptionsGiven };
}
