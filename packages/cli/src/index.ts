import { readFile } from "node:fs/promises";
import { createRequire } from "node:module";
import path from "node:path";
import {
  AMBROSIA_DEFAULT_LOG_TEXT,
  addReplica,
  addReplicaArgsFromValues,
  addReplicaOptions,
  addSpecOptions,
  type CliIO,
  COORDINATOR_OPTIONS,
  type CommanderSink,
  convertOptionValues,
  coordinatorArgsFromValues,
  DEBUG_OPTIONS,
  DEFAULT_LOG_TRIGGER_SIZE_MB,
  debugArgsFromValues,
  type EngineLoader,
  EXIT_USAGE,
  exitAfterFlush,
  FolderRegistry,
  formatRegistration,
  formatRegistrationLine,
  formatRegistrationTable,
  HELP_CONFIGURATION,
  launchCoordinator,
  launchDebugInstance,
  normalizeArgv,
  type OptionSpec,
  prepareCommand,
  processIO,
  REGISTRY_ENV_VAR,
  type Registry,
  registerArgsFromValues,
  registerInstance,
  registerOptions,
  reportError,
  runCommander,
  UnknownInstanceError,
  UsageError,
} from "@immortal/coordinator/cli";
import { defaultCodec } from "@immortal/sdk";
import { Command } from "commander";
import { runDebug } from "./debug.js";
import { runDev, runInstance } from "./dev.js";
import { runWhatIf } from "./whatif.js";

const PROGRAM = "immortal";

/** Options every verb accepts (commander recognises program options before and after the verb). */
export { freePort } from "./ports.js";

export const GLOBAL_OPTIONS: readonly OptionSpec[] = [
  {
    key: "registry",
    aliases: [],
    kind: "string",
    valueName: "dir",
    description: "registry folder",
    defaultText: `$${REGISTRY_ENV_VAR}, else ./.immortal`,
  },
];

const JSON_OPTION: OptionSpec = {
  key: "json",
  aliases: [],
  kind: "flag",
  description: "print JSON instead of text",
};

/** One `immortal` verb: its option table is the same one the AMBROSIA front ends use. */
export interface VerbSpec {
  readonly name: string;
  /** Positional operands in commander syntax (`<name>`), if any. */
  readonly operands?: string;
  readonly summary: string;
  readonly options: readonly OptionSpec[];
}

export const VERBS: readonly VerbSpec[] = [
  {
    name: "register",
    summary: "register an instance (AMBROSIA RegisterInstance), or re-register it keeping its identity",
    // The project's default trigger size (1024 MB); `Ambrosia RegisterInstance` keeps AMBROSIA's 1000.
    options: registerOptions(DEFAULT_LOG_TRIGGER_SIZE_MB, AMBROSIA_DEFAULT_LOG_TEXT),
  },
  {
    name: "add-replica",
    summary: "add an active/active replica of an instance (AMBROSIA AddReplica)",
    options: addReplicaOptions(DEFAULT_LOG_TRIGGER_SIZE_MB, AMBROSIA_DEFAULT_LOG_TEXT),
  },
  { name: "list", summary: "list the registered instances", options: [JSON_OPTION] },
  {
    name: "show",
    operands: "<name>",
    summary: "show an instance's registration and runtime metadata",
    options: [JSON_OPTION],
  },
  { name: "unregister", operands: "<name>", summary: "remove an instance's registration", options: [] },
  {
    name: "stats",
    operands: "<name>",
    summary: "show a coordinator's counters (commits, batches, latency, checkpoints, replay, links)",
    options: [JSON_OPTION],
  },
  {
    name: "dev",
    operands: "<entry>",
    summary:
      "run an app (a module whose default export is defineApp(…)) with in-process coordinators and embedded storage",
    options: [
      {
        key: "data",
        aliases: [],
        kind: "string",
        valueName: "<dir>",
        description: "folder for the registry and the logs (kept between runs: a second run recovers)",
        defaultText: "./.immortal-dev",
      },
    ],
  },
  {
    name: "run",
    operands: "<entry>",
    summary:
      "run one instance of an app against its coordinator (started separately with immortal coordinator)",
    options: [
      {
        key: "instance",
        aliases: ["i"],
        kind: "string",
        valueName: "<name>",
        description: "the instance to host (registered, and named in the app's instances)",
        required: true,
      },
      {
        key: "replicaNum",
        aliases: ["r"],
        kind: "int",
        min: 0,
        valueName: "n",
        description: "active/active: host replica n's binding (its registered ports)",
      },
    ],
  },
  {
    name: "whatif",
    operands: "<entry>",
    summary:
      "what-if upgrade test: replay an instance's log, read-only, on its version and on the app's newer one; report divergences",
    options: [
      {
        key: "instance",
        aliases: ["i"],
        kind: "string",
        valueName: "name",
        description: "the instance whose log is replayed (its registered current version's folder)",
        required: true,
      },
      {
        key: "checkpoint",
        aliases: ["c"],
        kind: "int",
        min: 1,
        valueName: "n",
        description: "checkpoint to replay from",
        defaultText: "the oldest one kept",
      },
    ],
  },
  {
    name: "coordinator",
    summary: "run the Immortal Coordinator (AMBROSIA ImmortalCoordinator options)",
    options: COORDINATOR_OPTIONS,
  },
  {
    name: "debug",
    operands: "[entry]",
    summary:
      "time travel: replay an instance's log from a checkpoint, read-only, to the app <entry> in this process " +
      "(its log lines printed), or without <entry> to an external binding (AMBROSIA DebugInstance)",
    options: [
      ...DEBUG_OPTIONS.map((o) =>
        o.key === "instanceName" ? { ...o, aliases: [...o.aliases, "instance"] } : o,
      ),
      {
        key: "printState",
        aliases: ["print-state"],
        kind: "flag",
        description: "with <entry>: print the instance's state where the replay stopped (tagged JSON)",
      },
      {
        key: "data",
        aliases: [],
        kind: "string",
        valueName: "dir",
        description: "the data folder of an app run with 'immortal dev --data <dir>' (its registry and logs)",
      },
    ],
  },
];

function version(): string {
  // Works from src/ (tests) and dist/ alike: both sit one level below the package root.
  const pkg: unknown = createRequire(import.meta.url)("../package.json");
  return typeof pkg === "object" && pkg !== null && "version" in pkg && typeof pkg.version === "string"
    ? pkg.version
    : "0.0.0";
}

/** Index of the verb in argv: the first token that is neither a global option nor its value. */
function verbIndex(argv: readonly string[]): number {
  for (let i = 0; i < argv.length; i++) {
    const token = argv[i]!;
    if (token === "--") return i + 1 < argv.length ? i + 1 : -1;
    if (/^--?registry$/.test(token)) {
      i++;
      continue;
    }
    if (!token.startsWith("-")) return i;
  }
  return -1;
}

interface Selection {
  verb: VerbSpec;
  command: Command;
}

function buildProgram(sink: CommanderSink, select: (s: Selection) => void): Command {
  const program = prepareCommand(new Command(PROGRAM), sink)
    .description(
      "Register Immortal instances and run the Immortal Coordinator (AMBROSIA-compatible options).",
    )
    .version(version(), "-V, --version")
    // Each verb's help also lists --registry, which every verb accepts.
    .configureHelp({ ...HELP_CONFIGURATION, showGlobalOptions: true });
  addSpecOptions(program, GLOBAL_OPTIONS);
  for (const verb of VERBS) {
    const command = program.command(
      verb.operands === undefined ? verb.name : `${verb.name} ${verb.operands}`,
    );
    command.description(verb.summary);
    addSpecOptions(command, verb.options);
    command.action(() => select({ verb, command }));
  }
  program.addHelpText(
    "after",
    [
      "",
      "Short AMBROSIA forms work everywhere (-i, -rp, -sp, -l, -lts, -aa, -cv, -uv, ...), as -x v, -x=v, --x=v.",
      "Example:",
      "  immortal register -i server -rp 2000 -sp 2001 -p 2500 -l ./logs",
      "  immortal coordinator -i server",
    ].join("\n"),
  );
  return program;
}

export interface ImmortalDeps {
  io?: CliIO;
  loadEngine?: EngineLoader;
}

/** Runs the `immortal` command line and returns the exit code (0 ok, 1 failure, 2 bad arguments). */
export async function runImmortal(argv: readonly string[], deps: ImmortalDeps = {}): Promise<number> {
  const io = deps.io ?? processIO();
  const sink: CommanderSink = { out: "", err: "" };
  let selection: Selection | undefined;
  const program = buildProgram(sink, (s) => {
    selection = s;
  });
  const at = verbIndex(argv);
  const verb = at < 0 ? undefined : VERBS.find((v) => v.name === argv[at]);
  let label = PROGRAM;
  try {
    // The normalizer runs before commander, per verb: commander cannot parse AMBROSIA's `-rp`-style options.
    const normalized =
      verb === undefined
        ? normalizeArgv(argv, GLOBAL_OPTIONS)
        : [
            ...normalizeArgv(argv.slice(0, at), GLOBAL_OPTIONS),
            verb.name,
            ...normalizeArgv(argv.slice(at + 1), [...verb.options, ...GLOBAL_OPTIONS]),
          ];
    if (verb !== undefined) label = `${PROGRAM} ${verb.name}`;
    if (at < 0 && !normalized.some((t) => t === "--help" || t === "-V" || t === "--version")) {
      io.err(program.helpInformation().trimEnd());
      return EXIT_USAGE;
    }
    const { help } = runCommander(program, normalized, sink);
    if (help !== undefined) {
      io.out(help.trimEnd());
      return 0;
    }
    if (selection === undefined) throw new Error("no verb was run");
    const registryDir = convertOptionValues(GLOBAL_OPTIONS, program.opts()).string("registry");
    const registry = FolderRegistry.open({ dir: registryDir, env: io.env, cwd: io.cwd });
    const values = convertOptionValues(selection.verb.options, selection.command.opts());
    const operand = selection.command.args[0];
    return await runVerb(selection.verb.name, { io, registry, values, operand, label, deps });
  } catch (e) {
    return reportError(io, label, e);
  }
}

interface VerbContext {
  io: CliIO;
  registry: Registry;
  values: ReturnType<typeof convertOptionValues>;
  operand: string | undefined;
  label: string;
  deps: ImmortalDeps;
}

async function runVerb(name: string, ctx: VerbContext): Promise<number> {
  const { io, registry, values } = ctx;
  switch (name) {
    case "register": {
      const args = registerArgsFromValues(values, {
        logTriggerSizeMB: DEFAULT_LOG_TRIGGER_SIZE_MB,
        cwd: io.cwd,
      });
      const { registration, created } = await registerInstance(args, registry);
      io.out(
        `${created ? "Registered" : "Re-registered"} instance "${registration.instanceName}" in ${registry.location}:`,
      );
      io.out(
        formatRegistration(registration)
          .map((l) => `  ${l}`)
          .join("\n"),
      );
      return 0;
    }
    case "add-replica": {
      const args = addReplicaArgsFromValues(values, {
        logTriggerSizeMB: DEFAULT_LOG_TRIGGER_SIZE_MB,
        cwd: io.cwd,
      });
      const result = await addReplica(args, registry);
      for (const key of result.ignored) {
        io.err(
          `warning: --${key} ignored: "${args.instanceName}" is already registered (use immortal register)`,
        );
      }
      io.out(
        `Added replica ${args.replicaNum} of ${formatRegistrationLine(result.registration, args.replicaNum)}`,
      );
      return 0;
    }
    case "list": {
      const regs = await registry.list();
      if (values.flag("json")) io.out(JSON.stringify(regs, null, 2));
      else if (regs.length === 0) io.out(`No instances registered in ${registry.location}`);
      else io.out(formatRegistrationTable(regs).join("\n"));
      return 0;
    }
    case "show": {
      const instance = ctx.operand ?? "";
      const registration = await registry.require(instance);
      const meta = await registry.getMeta(instance);
      if (values.flag("json")) io.out(JSON.stringify({ registration, meta }, null, 2));
      else io.out(formatRegistration(registration, meta).join("\n"));
      return 0;
    }
    case "unregister": {
      const instance = ctx.operand ?? "";
      const registration = await registry.get(instance);
      if (registration === undefined || !(await registry.remove(instance))) {
        throw new UnknownInstanceError(instance, registry.location);
      }
      io.out(
        `Unregistered instance "${instance}" from ${registry.location} ` +
          `(its log folder ${registration.logDir} is left in place)`,
      );
      return 0;
    }
    case "stats": {
      const instance = ctx.operand ?? "";
      const registration = await registry.require(instance);
      // The coordinator rewrites this file every second (atomic replace) while it runs.
      const file = path.join(registration.logDir, `${instance}_${registration.currentVersion}`, "stats.json");
      let text: string;
      try {
        text = await readFile(file, "utf8");
      } catch {
        io.err(`no counters for "${instance}": ${file} does not exist (its coordinator has not run yet)`);
        return 1;
      }
      const stats = JSON.parse(text) as { at?: string };
      const ageMs = stats.at === undefined ? Number.POSITIVE_INFINITY : Date.now() - Date.parse(stats.at);
      if (values.flag("json")) {
        io.out(text.trim());
      } else {
        io.out(
          `${instance}: counters from ${file}${ageMs > 5000 ? " (stale: is its coordinator running?)" : ""}`,
        );
        io.out(formatStats(stats).join("\n"));
      }
      return 0;
    }
    case "dev":
      return runDev({
        entry: ctx.operand ?? "",
        dataDir: values.string("data") ?? ".immortal-dev",
        cwd: io.cwd,
        codec: defaultCodec(),
        out: (line) => io.out(line),
      });
    case "run":
      return runInstance({
        entry: ctx.operand ?? "",
        instance: values.string("instance") ?? "",
        replicaNum: values.number("replicaNum") ?? 0,
        registry,
        cwd: io.cwd,
        codec: defaultCodec(),
        out: (line) => io.out(line),
      });
    case "whatif":
      return runWhatIf({
        entry: ctx.operand ?? "",
        instance: values.string("instance") ?? "",
        checkpoint: values.number("checkpoint"),
        registry,
        cwd: io.cwd,
        codec: defaultCodec(),
        out: (line) => io.out(line),
      });
    case "coordinator":
      return launchCoordinator(coordinatorArgsFromValues(values), ctx.label, {
        io,
        registry,
        loadEngine: ctx.deps.loadEngine,
      });
    case "debug":
      return debugVerb(ctx);
    default:
      throw new Error(`verb ${name} has no handler`);
  }
}

/** `immortal debug [entry]`: the app in this process when an entry is given, else AMBROSIA's DebugInstance. */
async function debugVerb(ctx: VerbContext): Promise<number> {
  const { io, values } = ctx;
  const args = debugArgsFromValues(values);
  const data = values.string("data");
  const registry =
    data === undefined
      ? ctx.registry
      : FolderRegistry.open({ dir: path.join(path.resolve(io.cwd, data), "registry") });
  if (ctx.operand === undefined) {
    if (values.flag("printState")) {
      throw new UsageError("--print-state needs the app: immortal debug <entry> --instance <name> ...");
    }
    return launchDebugInstance(args, ctx.label, { io, registry, loadEngine: ctx.deps.loadEngine });
  }
  return runDebug({
    entry: ctx.operand,
    instance: args.instanceName,
    checkpoint: args.checkpoint,
    ...(args.stopAt !== undefined ? { stopAt: args.stopAt } : {}),
    printState: values.flag("printState"),
    exact: args.exact,
    testingUpgrade: args.testingUpgrade,
    registry,
    ...(args.logDir !== undefined ? { logDir: args.logDir } : {}),
    ...(values.has("currentVersion") ? { currentVersion: args.currentVersion } : {}),
    cwd: io.cwd,
    codec: defaultCodec(),
    out: (line) => io.out(line),
    err: (line) => io.err(line),
  });
}

/** Flattens the counters object into `key.path: value` lines, in the coordinator's own order. */
function formatStats(value: unknown, prefix = ""): string[] {
  if (value === null || typeof value !== "object") return [`  ${prefix}: ${String(value)}`];
  const lines: string[] = [];
  for (const [k, v] of Object.entries(value))
    lines.push(...formatStats(v, prefix === "" ? k : `${prefix}.${k}`));
  return lines;
}

/** Entry point of bin/immortal.mjs. */
export async function runImmortalProcess(argv: readonly string[]): Promise<never> {
  return exitAfterFlush(await runImmortal(argv));
}
