import { randomUUID } from "node:crypto";
import { RegistrationError } from "./errors.js";
import {
  CREATE_SERVICE_MODES,
  type CreateServiceMode,
  type IcAddress,
  type InstanceMeta,
  type InstanceRegistration,
  type ReplicaOverrides,
} from "./types.js";

export const DEFAULT_IC_HOST = "127.0.0.1";
/** The project's default (coordinator spec); AMBROSIA's RegisterInstance uses 1000, see the CLI. */
export const DEFAULT_LOG_TRIGGER_SIZE_MB = 1024;
/** Upper bound keeps `MB × 1048576` far inside the safe-integer range (1 TiB of log per file). */
export const MAX_LOG_TRIGGER_SIZE_MB = 1_048_576;
export const MAX_INSTANCE_NAME_LENGTH = 128;

/** The fields a caller chooses when registering; everything else has a default or is generated. */
export interface RegistrationInput {
  instanceName: string;
  receivePort: number;
  sendPort: number;
  logDir: string;
  host?: string;
  icPort?: number;
  currentVersion?: number;
  upgradeVersion?: number;
  activeActive?: boolean;
  replicas?: number[];
  replicaOverrides?: Record<string, ReplicaOverrides>;
  logTriggerSizeMB?: number;
  createService?: CreateServiceMode;
  pauseAtStart?: boolean;
  persistLogs?: boolean;
}

// Names become file names (and later table keys), so only characters that are safe everywhere; a leading dot
// would hide the file and collide with our temp files, a leading dash would read as an option on command lines.
const NAME_RE = /^[A-Za-z0-9_][A-Za-z0-9_.-]*$/;
const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export function validateInstanceName(name: unknown): string {
  if (typeof name !== "string" || name.length === 0) {
    throw new RegistrationError("INVALID_NAME", "instance name must be a non-empty string");
  }
  if (name.length > MAX_INSTANCE_NAME_LENGTH) {
    throw new RegistrationError(
      "INVALID_NAME",
      `instance name "${name.slice(0, 20)}…" is longer than ${MAX_INSTANCE_NAME_LENGTH} characters`,
    );
  }
  if (!NAME_RE.test(name)) {
    throw new RegistrationError(
      "INVALID_NAME",
      `instance name "${name}" may contain only letters, digits, '_', '.' and '-', and must not start with '.' or '-'`,
    );
  }
  return name;
}

export function validatePort(value: unknown, what: string): number {
  if (typeof value !== "number" || !Number.isInteger(value) || value < 1 || value > 65535) {
    throw new RegistrationError(
      "INVALID_PORT",
      `${what} must be an integer from 1 to 65535, got ${show(value)}`,
    );
  }
  return value;
}

function validateVersion(value: unknown, what: string): number {
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value < 0) {
    throw new RegistrationError(
      "INVALID_VERSION",
      `${what} must be a non-negative integer, got ${show(value)}`,
    );
  }
  return value;
}

function validateHost(value: unknown, what: string): string {
  if (typeof value !== "string" || value.length === 0 || /\s/.test(value)) {
    throw new RegistrationError(
      "INVALID_HOST",
      `${what} must be a host name or IP address, got ${show(value)}`,
    );
  }
  return value;
}

function validateLogDir(value: unknown, what: string): string {
  if (typeof value !== "string" || value.trim().length === 0) {
    throw new RegistrationError("INVALID_LOG_DIR", `${what} must be a non-empty path, got ${show(value)}`);
  }
  return value;
}

function validateBool(value: unknown, what: string): boolean {
  if (typeof value !== "boolean") {
    throw new RegistrationError("INVALID_FIELD", `${what} must be true or false, got ${show(value)}`);
  }
  return value;
}

function validateTimestamp(value: unknown, what: string): string {
  if (typeof value !== "string" || Number.isNaN(Date.parse(value))) {
    throw new RegistrationError("INVALID_FIELD", `${what} must be an ISO-8601 timestamp, got ${show(value)}`);
  }
  return value;
}

export function validateTriggerSize(value: unknown, what = "logTriggerSizeMB"): number {
  if (typeof value !== "number" || !Number.isInteger(value) || value < 1 || value > MAX_LOG_TRIGGER_SIZE_MB) {
    throw new RegistrationError(
      "INVALID_TRIGGER_SIZE",
      `${what} must be an integer number of MB from 1 to ${MAX_LOG_TRIGGER_SIZE_MB}, got ${show(value)}`,
    );
  }
  return value;
}

export function validateCreateService(value: unknown): CreateServiceMode {
  const mode = CREATE_SERVICE_MODES.find((m) => m === value);
  if (mode === undefined) {
    throw new RegistrationError(
      "INVALID_CREATE_SERVICE",
      `createService must be A (auto), N (no recovery) or Y (always recover), got ${show(value)}`,
    );
  }
  return mode;
}

/** Throws PORT_CONFLICT when two of the given (label, port) pairs share a port. */
export function checkDistinctPorts(
  ports: ReadonlyArray<readonly [string, number | undefined]>,
  who: string,
): void {
  const seen = new Map<number, string>();
  for (const [label, port] of ports) {
    if (port === undefined) continue;
    const other = seen.get(port);
    if (other !== undefined) {
      throw new RegistrationError(
        "PORT_CONFLICT",
        `${who}: ${other} and ${label} are both ${port}; they must differ`,
      );
    }
    seen.set(port, label);
  }
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function show(value: unknown): string {
  if (value === undefined) return "nothing";
  if (typeof value === "string") return JSON.stringify(value);
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}

function validateReplicas(value: unknown): number[] {
  if (!Array.isArray(value)) {
    throw new RegistrationError(
      "INVALID_REPLICA",
      `replicas must be a list of replica numbers, got ${show(value)}`,
    );
  }
  const out: number[] = [];
  for (const r of value) {
    if (typeof r !== "number" || !Number.isSafeInteger(r) || r < 1) {
      throw new RegistrationError(
        "INVALID_REPLICA",
        `replica numbers must be positive integers, got ${show(r)}`,
      );
    }
    if (out.includes(r)) throw new RegistrationError("INVALID_REPLICA", `replica ${r} is listed twice`);
    out.push(r);
  }
  return out.sort((a, b) => a - b);
}

function validateReplicaOverrides(
  value: unknown,
  replicas: readonly number[],
  base: { receivePort: number; sendPort: number; icPort: number | undefined },
  name: string,
): Record<string, ReplicaOverrides> {
  if (value === undefined) return {};
  if (!isRecord(value)) {
    throw new RegistrationError("INVALID_REPLICA", `replicaOverrides must be an object, got ${show(value)}`);
  }
  const out: Record<string, ReplicaOverrides> = {};
  for (const [key, raw] of Object.entries(value)) {
    const replica = Number(key);
    if (!replicas.includes(replica) || String(replica) !== key) {
      throw new RegistrationError(
        "INVALID_REPLICA",
        `replicaOverrides has settings for unlisted replica "${key}"`,
      );
    }
    if (!isRecord(raw)) {
      throw new RegistrationError(
        "INVALID_REPLICA",
        `replica ${key} settings must be an object, got ${show(raw)}`,
      );
    }
    const o: ReplicaOverrides = {};
    const what = `replica ${key}`;
    if (raw.receivePort !== undefined) o.receivePort = validatePort(raw.receivePort, `${what} receivePort`);
    if (raw.sendPort !== undefined) o.sendPort = validatePort(raw.sendPort, `${what} sendPort`);
    if (raw.icPort !== undefined) o.icPort = validatePort(raw.icPort, `${what} icPort`);
    if (raw.logDir !== undefined) o.logDir = validateLogDir(raw.logDir, `${what} logDir`);
    if (raw.host !== undefined) o.host = validateHost(raw.host, `${what} host`);
    checkDistinctPorts(
      [
        ["receivePort", o.receivePort ?? base.receivePort],
        ["sendPort", o.sendPort ?? base.sendPort],
        ["icPort", o.icPort ?? base.icPort],
      ],
      `replica ${key} of "${name}"`,
    );
    out[key] = o;
  }
  return out;
}

/**
 * Checks every field of a registration (typically parsed JSON) and returns a clean copy: known fields only,
 * replicas sorted. Throws `RegistrationError` naming the first bad field.
 */
export function validateRegistration(value: unknown): InstanceRegistration {
  if (!isRecord(value)) {
    throw new RegistrationError("INVALID_FIELD", `a registration must be an object, got ${show(value)}`);
  }
  const instanceName = validateInstanceName(value.instanceName);
  const receivePort = validatePort(value.receivePort, "receivePort");
  const sendPort = validatePort(value.sendPort, "sendPort");
  const icPort = value.icPort === undefined ? undefined : validatePort(value.icPort, "icPort");
  checkDistinctPorts(
    [
      ["receivePort", receivePort],
      ["sendPort", sendPort],
      ["icPort", icPort],
    ],
    `instance "${instanceName}"`,
  );
  const currentVersion = validateVersion(value.currentVersion, "currentVersion");
  const upgradeVersion = validateVersion(value.upgradeVersion, "upgradeVersion");
  if (upgradeVersion < currentVersion) {
    throw new RegistrationError(
      "VERSION_ORDER",
      `upgradeVersion (${upgradeVersion}) must not be lower than currentVersion (${currentVersion})`,
    );
  }
  const replicas = validateReplicas(value.replicas);
  const registrationId = value.registrationId;
  if (typeof registrationId !== "string" || !UUID_RE.test(registrationId)) {
    throw new RegistrationError(
      "INVALID_FIELD",
      `registrationId must be a UUID, got ${show(registrationId)}`,
    );
  }
  const reg: InstanceRegistration = {
    instanceName,
    host: validateHost(value.host, "host"),
    // Absent rather than undefined when unset, so stored JSON and deep equality stay clean.
    ...(icPort === undefined ? {} : { icPort }),
    receivePort,
    sendPort,
    logDir: validateLogDir(value.logDir, "logDir"),
    currentVersion,
    upgradeVersion,
    activeActive: validateBool(value.activeActive, "activeActive"),
    replicas,
    replicaOverrides: validateReplicaOverrides(
      value.replicaOverrides,
      replicas,
      { receivePort, sendPort, icPort },
      instanceName,
    ),
    logTriggerSizeMB: validateTriggerSize(value.logTriggerSizeMB),
    createService: validateCreateService(value.createService),
    pauseAtStart: validateBool(value.pauseAtStart, "pauseAtStart"),
    persistLogs: validateBool(value.persistLogs, "persistLogs"),
    registrationId,
    createdAt: validateTimestamp(value.createdAt, "createdAt"),
    updatedAt: validateTimestamp(value.updatedAt, "updatedAt"),
  };
  return reg;
}

/** A complete, validated registration from the caller's choices plus defaults, a fresh identity and timestamps. */
export function createRegistration(input: RegistrationInput, now: Date = new Date()): InstanceRegistration {
  const currentVersion = input.currentVersion ?? 0;
  const stamp = now.toISOString();
  return validateRegistration({
    instanceName: input.instanceName,
    host: input.host ?? DEFAULT_IC_HOST,
    icPort: input.icPort,
    receivePort: input.receivePort,
    sendPort: input.sendPort,
    logDir: input.logDir,
    currentVersion,
    upgradeVersion: input.upgradeVersion ?? currentVersion,
    activeActive: input.activeActive ?? false,
    replicas: input.replicas ?? [],
    replicaOverrides: input.replicaOverrides ?? {},
    logTriggerSizeMB: input.logTriggerSizeMB ?? DEFAULT_LOG_TRIGGER_SIZE_MB,
    createService: input.createService ?? "A",
    pauseAtStart: input.pauseAtStart ?? false,
    persistLogs: input.persistLogs ?? true,
    registrationId: randomUUID(),
    createdAt: stamp,
    updatedAt: stamp,
  });
}

function optionalCount(value: unknown, what: string): number | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value < 0) {
    throw new RegistrationError(
      "INVALID_FIELD",
      `${what} must be a non-negative integer, got ${show(value)}`,
    );
  }
  return value;
}

function validateIcAddress(value: unknown): IcAddress {
  if (!isRecord(value)) {
    throw new RegistrationError("INVALID_FIELD", `icAddress must be an object, got ${show(value)}`);
  }
  const pid = value.pid;
  if (typeof pid !== "number" || !Number.isSafeInteger(pid) || pid < 0) {
    throw new RegistrationError("INVALID_FIELD", `icAddress.pid must be a process id, got ${show(pid)}`);
  }
  return {
    host: validateHost(value.host, "icAddress.host"),
    port: validatePort(value.port, "icAddress.port"),
    pid,
    startedAt: validateTimestamp(value.startedAt, "icAddress.startedAt"),
  };
}

/** Checks runtime metadata (typically parsed JSON) and returns a clean copy with only the known fields. */
export function validateMeta(value: unknown): InstanceMeta {
  if (!isRecord(value)) {
    throw new RegistrationError("INVALID_FIELD", `instance metadata must be an object, got ${show(value)}`);
  }
  const meta: InstanceMeta = {};
  const currentVersion = optionalCount(value.currentVersion, "currentVersion");
  if (currentVersion !== undefined) meta.currentVersion = currentVersion;
  const lastCommittedCheckpoint = optionalCount(value.lastCommittedCheckpoint, "lastCommittedCheckpoint");
  if (lastCommittedCheckpoint !== undefined) meta.lastCommittedCheckpoint = lastCommittedCheckpoint;
  const lastLogFile = optionalCount(value.lastLogFile, "lastLogFile");
  if (lastLogFile !== undefined) meta.lastLogFile = lastLogFile;
  if (value.icAddress !== undefined) meta.icAddress = validateIcAddress(value.icAddress);
  const incarnation = optionalCount(value.incarnation, "incarnation");
  if (incarnation !== undefined) meta.incarnation = incarnation;
  return meta;
}
