/**
 * AMBROSIA's `createService` setting (registration option `-cs`):
 * - `A` auto: recover if the log folder `<log>/<name>_<currentVersion>` exists, else start fresh;
 * - `N` no recovery: always start fresh;
 * - `Y` always recover.
 */
export type CreateServiceMode = "A" | "N" | "Y";

export const CREATE_SERVICE_MODES: readonly CreateServiceMode[] = ["A", "N", "Y"];

/**
 * Settings of one active/active replica that differ from the instance's own (AMBROSIA's AddReplica registers
 * each replica with its own ports, so replicas can share a machine). Unset fields fall back to the instance.
 */
export interface ReplicaOverrides {
  receivePort?: number;
  sendPort?: number;
  icPort?: number;
  logDir?: string;
  host?: string;
}

/** What `register` stores about an instance. Plain JSON: the registry persists it as is. */
export interface InstanceRegistration {
  instanceName: string;
  /** Host or IP other ICs use to reach this instance's IC (IC-to-IC traffic). */
  host: string;
  /**
   * IC-to-IC listener port. Optional because AMBROSIA's RegisterInstance has no such option (its IC gets it from
   * `ImmortalCoordinator -p`); the coordinator then needs it on its command line.
   */
  icPort?: number;
  /** Port the IC listens on for the language binding's messages (binding → IC). */
  receivePort: number;
  /** Port the IC listens on to send to the language binding (IC → binding). */
  sendPort: number;
  /** Log folder; the IC keeps `<logDir>/<instanceName>_<version>/serverlog<N>` and `serverchkpt<N>` in it. */
  logDir: string;
  currentVersion: number;
  /** Version to upgrade to; equal to currentVersion when no upgrade is pending. */
  upgradeVersion: number;
  activeActive: boolean;
  /** Replica numbers added with AddReplica (replica 0, the instance itself, is implicit). Sorted, distinct, ≥ 1. */
  replicas: number[];
  /** Per-replica settings, keyed by replica number; only for replicas listed in `replicas`. */
  replicaOverrides: Record<string, ReplicaOverrides>;
  /** MB of log after which the IC rotates the log and takes a checkpoint. */
  logTriggerSizeMB: number;
  createService: CreateServiceMode;
  /** The IC waits for Enter on its console before starting (AMBROSIA `-ps`). */
  pauseAtStart: boolean;
  /** False only for performance tests: the IC does not write its log (AMBROSIA `-npl`). */
  persistLogs: boolean;
  /**
   * Random UUID made on first registration and kept across re-registrations: the identity two ICs compare in
   * their handshake, so a re-created instance with the same name cannot be mistaken for the old one.
   */
  registrationId: string;
  /** ISO-8601 timestamps. */
  createdAt: string;
  updatedAt: string;
}

/** Where a running IC can be reached; written by the IC when it starts listening. */
export interface IcAddress {
  host: string;
  port: number;
  pid: number;
  /** ISO-8601. */
  startedAt: string;
}

/**
 * Runtime metadata the IC keeps per instance (AMBROSIA keeps these rows in a table named after the instance).
 * Every field is optional: a never-started instance has none.
 */
export interface InstanceMeta {
  currentVersion?: number;
  lastCommittedCheckpoint?: number;
  lastLogFile?: number;
  icAddress?: IcAddress;
  /**
   * The coordinator's incarnation, bumped durably at every start. Impulse ids carry it, so a restarted
   * coordinator never reuses the id of an impulse a receiver already logged.
   */
  incarnation?: number;
}

/**
 * The registry every front end and IC goes through. The embedded default is `FolderRegistry`; a replicated
 * registry (Azure Tables) will implement the same interface, so keep it small.
 */
export interface Registry {
  /** Human-readable location (a folder path, a table endpoint) used in messages. */
  readonly location: string;
  get(name: string): Promise<InstanceRegistration | undefined>;
  /** Like `get`, but throws `UnknownInstanceError` (naming `location`) when the instance is not registered. */
  require(name: string): Promise<InstanceRegistration>;
  /** Validates and stores `reg`, replacing any previous record; sets `updatedAt`. */
  put(reg: InstanceRegistration): Promise<InstanceRegistration>;
  /** All registrations, sorted by name. */
  list(): Promise<InstanceRegistration[]>;
  /** Removes the registration and its metadata; false when there was none. */
  remove(name: string): Promise<boolean>;
  /**
   * Read-modify-write of one registration, atomic with respect to every other writer (other processes
   * included). The mutator sees the current record (or undefined) and returns the new one, or undefined to
   * leave the store unchanged. Returns what is stored afterwards.
   */
  update(name: string, mutator: RegistrationMutator): Promise<InstanceRegistration | undefined>;
  /** The instance's runtime metadata; `{}` when it has none. */
  getMeta(name: string): Promise<InstanceMeta>;
  /** Read-modify-write of the metadata, with the same guarantee as `update`. Returns the stored metadata. */
  updateMeta(name: string, mutator: MetaMutator): Promise<InstanceMeta>;
}

export type RegistrationMutator = (
  current: InstanceRegistration | undefined,
) => InstanceRegistration | undefined | Promise<InstanceRegistration | undefined>;

export type MetaMutator = (current: InstanceMeta) => InstanceMeta | Promise<InstanceMeta>;
