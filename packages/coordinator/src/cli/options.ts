import { MAX_LOG_TRIGGER_SIZE_MB } from "../registry/validate.js";

/** How an option's value is read and checked. */
export type OptionKind =
  /** No value: present means true (Mono.Options also allows `-x+` / `-x-`). */
  | "flag"
  /** TCP port, 1–65535. */
  | "port"
  /** Integer within `min`..`max`. */
  | "int"
  /** One of `choices`, matched case-insensitively, stored in the spelling of `choices`. */
  | "enum"
  /** Any non-empty string. */
  | "string";

/**
 * One command-line option. The same table drives the argv normalizer (so every AMBROSIA alias works), the
 * commander definition, value checking, and `--help`, so they cannot disagree.
 */
export interface OptionSpec {
  /** Long name without dashes: what commander sees (`--receivePort`) and the key of the parsed values. */
  readonly key: string;
  /** AMBROSIA's other names, without dashes (`rp`). Mono.Options accepts each with one or two dashes. */
  readonly aliases: readonly string[];
  readonly kind: OptionKind;
  /** Placeholder shown in help (`<port>`). */
  readonly valueName?: string;
  readonly description: string;
  readonly required?: boolean;
  readonly choices?: readonly string[];
  readonly min?: number;
  readonly max?: number;
  /** Default as shown in help; the default itself is applied by the code that resolves options. */
  readonly defaultText?: string;
}

/** `--receivePort (-rp)`: how messages name an option, long form first, AMBROSIA's short form after. */
export function optionLabel(spec: OptionSpec): string {
  const short = spec.aliases.map((a) => `-${a}`).join(", ");
  return short === "" ? `--${spec.key}` : `--${spec.key} (${short})`;
}

/** Reuse a base spec with a description (and flags) that fit one command. */
function variant(base: OptionSpec, changes: Partial<OptionSpec>): OptionSpec {
  return { ...base, ...changes };
}

const instanceName: OptionSpec = {
  key: "instanceName",
  aliases: ["i"],
  kind: "string",
  valueName: "name",
  description: "instance (service) name",
  required: true,
};
const receivePort: OptionSpec = {
  key: "receivePort",
  aliases: ["rp"],
  kind: "port",
  valueName: "port",
  description: "port the IC listens on for messages from the language binding",
};
const sendPort: OptionSpec = {
  key: "sendPort",
  aliases: ["sp"],
  kind: "port",
  valueName: "port",
  description: "port the IC listens on to send messages to the language binding",
};
const log: OptionSpec = {
  key: "log",
  aliases: ["l"],
  kind: "string",
  valueName: "dir",
  description: "log folder (relative paths are resolved against the current directory)",
};
const icPort: OptionSpec = {
  key: "port",
  aliases: ["p"],
  kind: "port",
  valueName: "port",
  description: "IC-to-IC port (other coordinators connect to it)",
};
const logTriggerSize: OptionSpec = {
  key: "logTriggerSize",
  aliases: ["lts"],
  kind: "int",
  min: 1,
  max: MAX_LOG_TRIGGER_SIZE_MB,
  valueName: "MB",
  description: "MB of log after which the IC rotates the log and takes a checkpoint",
};
const activeActive: OptionSpec = {
  key: "activeActive",
  aliases: ["aa"],
  kind: "flag",
  description: "active/active: replicas share the log, one is primary",
};
const currentVersion: OptionSpec = {
  key: "currentVersion",
  aliases: ["cv"],
  kind: "int",
  min: 0,
  valueName: "n",
  description: "current version of the instance's code",
  defaultText: "0",
};

/** AMBROSIA `ImmortalCoordinator` options (and `immortal coordinator`). */
export const COORDINATOR_OPTIONS: readonly OptionSpec[] = [
  instanceName,
  variant(icPort, { defaultText: "registered IC port" }),
  variant(receivePort, { description: "override the registered receive port", defaultText: "registered" }),
  variant(sendPort, { description: "override the registered send port", defaultText: "registered" }),
  variant(log, { description: "override the registered log folder", defaultText: "registered" }),
  variant(logTriggerSize, {
    description: "override the registered log trigger size (MB)",
    defaultText: "registered",
  }),
  variant(activeActive, { description: "run as an active/active replica" }),
  {
    key: "replicaNum",
    aliases: ["r"],
    kind: "int",
    min: 0,
    valueName: "n",
    description: "replica number; implies --activeActive",
    defaultText: "0",
  },
  {
    key: "logStorageType",
    aliases: ["lst"],
    kind: "enum",
    choices: ["files", "blobs"],
    valueName: "type",
    description: "where the log lives: files (blobs is not supported yet)",
    defaultText: "files",
  },
  {
    key: "IPAddr",
    aliases: ["ip"],
    kind: "string",
    valueName: "address",
    description: "address other coordinators use to reach this one",
    defaultText: "registered host",
  },
  {
    key: "assemblyName",
    aliases: ["an"],
    kind: "string",
    valueName: "name",
    description: "accepted for AMBROSIA compatibility and ignored (.NET secure-stream assembly)",
  },
  {
    key: "assemblyClass",
    aliases: ["ac"],
    kind: "string",
    valueName: "name",
    description: "accepted for AMBROSIA compatibility and ignored (.NET secure-stream class)",
  },
  {
    key: "strictDeterminism",
    aliases: [],
    kind: "flag",
    description:
      "stop with FATAL ERROR when a replay (recovery, or an active/active standby) diverges from the live run (not AMBROSIA's)",
  },
  {
    key: "keepCheckpoints",
    aliases: [],
    kind: "int",
    min: 1,
    valueName: "n",
    description: "checkpoints (with their logs) kept for recovery and time travel; older ones are deleted",
    defaultText: "2",
  },
  {
    key: "noDeterminismDigests",
    aliases: [],
    kind: "flag",
    description: "do not record digests of outputs nor check replays against them (not AMBROSIA's)",
  },
];

/** Registration options shared by `Ambrosia RegisterInstance` and `immortal register`. */
export function registerOptions(
  defaultLogTriggerSizeMB: number,
  defaultLogText: string,
): readonly OptionSpec[] {
  return [
    instanceName,
    variant(receivePort, { required: true }),
    variant(sendPort, { required: true }),
    variant(log, { defaultText: defaultLogText }),
    {
      key: "createService",
      aliases: ["cs"],
      kind: "enum",
      choices: ["A", "N", "Y"],
      valueName: "A|N|Y",
      description: "A: recover if the log exists, else start fresh; N: always start fresh; Y: always recover",
      defaultText: "A",
    },
    {
      key: "pauseAtStart",
      aliases: ["ps"],
      kind: "flag",
      description: "the coordinator waits for Enter on its console before starting",
    },
    {
      key: "noPersistLogs",
      aliases: ["npl"],
      kind: "flag",
      description: "do not write the log (performance testing only: no recovery)",
    },
    variant(logTriggerSize, { defaultText: String(defaultLogTriggerSizeMB) }),
    variant(activeActive, { description: "register as active/active (replicas share the log)" }),
    currentVersion,
    {
      key: "upgradeVersion",
      aliases: ["uv"],
      kind: "int",
      min: 0,
      valueName: "n",
      description: "version to upgrade to (must be ≥ --currentVersion)",
      defaultText: "current version",
    },
    variant(icPort, {
      description: "IC-to-IC port to register (AMBROSIA passes it to ImmortalCoordinator -p)",
    }),
    {
      key: "host",
      aliases: [],
      kind: "string",
      valueName: "host",
      description: "host or IP other coordinators use to reach this instance",
      defaultText: "127.0.0.1",
    },
  ];
}

/** `AddReplica`: registration options plus the replica number; ports are optional once the instance exists. */
export function addReplicaOptions(
  defaultLogTriggerSizeMB: number,
  defaultLogText: string,
): readonly OptionSpec[] {
  return [
    ...registerOptions(defaultLogTriggerSizeMB, defaultLogText).map((o) =>
      o.key === "receivePort" || o.key === "sendPort"
        ? variant(o, { required: false, description: `${o.description} (required if the instance is new)` })
        : o,
    ),
    {
      key: "replicaNum",
      aliases: ["r"],
      // No `min` here: 0 gets its own message (AMBROSIA's rule) from addReplicaArgsFromValues.
      kind: "int",
      valueName: "n",
      description: "replica number (1 or more; replica 0 is the instance itself)",
      required: true,
    },
  ];
}

/** `DebugInstance`: replay from a checkpoint without joining the network (time-travel debugging). */
export const DEBUG_OPTIONS: readonly OptionSpec[] = [
  instanceName,
  variant(receivePort, { defaultText: "registered" }),
  variant(sendPort, { defaultText: "registered" }),
  variant(log, { defaultText: "registered" }),
  {
    key: "checkpoint",
    aliases: ["c"],
    kind: "int",
    min: 1,
    valueName: "n",
    description: "checkpoint to start the replay from",
    defaultText: "1",
  },
  variant(currentVersion, { description: "version whose log is replayed" }),
  {
    key: "testingUpgrade",
    aliases: ["tu"],
    kind: "flag",
    description: "what-if test of an upgrade: not here, see 'immortal whatif'",
  },
  {
    key: "stopAt",
    aliases: ["stop-at"],
    kind: "int",
    min: 0,
    valueName: "seq",
    description: "deliver log records up to and including this sequence number, then stop (not AMBROSIA's)",
  },
  {
    key: "exact",
    aliases: [],
    kind: "flag",
    description:
      "replay one record at a time (a checkpoint round trip each), so a divergence names exactly the input " +
      "record that produced it (not AMBROSIA's)",
  },
];
