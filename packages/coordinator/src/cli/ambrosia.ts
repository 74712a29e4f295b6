import { FolderRegistry } from "../registry/folder-registry.js";
import type { Registry } from "../registry/types.js";
import { DEBUG_INSTANCE_COMMAND, parseDebugArgs } from "./coordinator-command.js";
import type { EngineLoader } from "./engine.js";
import { EXIT_USAGE } from "./errors.js";
import { formatRegistrationLine } from "./format.js";
import { type CliIO, processIO, reportError } from "./io.js";
import { launchDebugInstance } from "./launch.js";
import { addReplicaOptions, registerOptions } from "./options.js";
import { type CommandSpec, parseOptions } from "./parse.js";
import {
  AMBROSIA_LOG_TRIGGER_SIZE_MB,
  addReplica,
  addReplicaArgsFromValues,
  registerArgsFromValues,
  registerInstance,
} from "./register-command.js";

export const AMBROSIA_DEFAULT_LOG_TEXT = "AmbrosiaLogs at the root of the current drive, as AMBROSIA";

export const REGISTER_INSTANCE_COMMAND: CommandSpec = {
  name: "Ambrosia RegisterInstance",
  summary: "Register an instance (or re-register it, keeping its identity).",
  options: registerOptions(AMBROSIA_LOG_TRIGGER_SIZE_MB, AMBROSIA_DEFAULT_LOG_TEXT),
};

export const ADD_REPLICA_COMMAND: CommandSpec = {
  name: "Ambrosia AddReplica",
  summary: "Add an active/active replica of an instance, with its own ports if given.",
  options: addReplicaOptions(AMBROSIA_LOG_TRIGGER_SIZE_MB, AMBROSIA_DEFAULT_LOG_TEXT),
};

export interface FrontEndDeps {
  io?: CliIO;
  registry?: Registry;
  loadEngine?: EngineLoader;
}

const VERBS = ["RegisterInstance", "AddReplica", "DebugInstance"] as const;

function ambrosiaUsage(registryLocation: string): string {
  return [
    "Usage: Ambrosia <verb> [options]",
    "",
    "Verbs (case-insensitive):",
    "  RegisterInstance  register an instance: -i <name> -rp <port> -sp <port> [-l <dir>] [-p <IC port>] ...",
    "  AddReplica        add an active/active replica: -i <name> -r <n> [-rp <port> -sp <port>] ...",
    "  DebugInstance     replay a log from a checkpoint: -i <name> [-rp <port> -sp <port> -l <dir>] [-c <n>] ...",
    "",
    "Run 'Ambrosia <verb> --help' for the options of a verb.",
    `Registry: ${registryLocation} (set IMMORTAL_HOME to use another folder)`,
  ].join("\n");
}

/**
 * AMBROSIA's `Ambrosia` admin executable: `Ambrosia RegisterInstance|AddReplica|DebugInstance [options]`, with
 * AMBROSIA's option names. The verb is case-insensitive, as in AMBROSIA. Returns the exit code.
 */
export async function runAmbrosia(argv: readonly string[], deps: FrontEndDeps = {}): Promise<number> {
  const io = deps.io ?? processIO();
  const registry = deps.registry ?? FolderRegistry.open({ env: io.env, cwd: io.cwd });
  const [verbArg, ...rest] = argv;
  if (verbArg === undefined) {
    io.err(ambrosiaUsage(registry.location));
    return EXIT_USAGE;
  }
  if (["-h", "--help", "-?", "/?", "help"].includes(verbArg)) {
    io.out(ambrosiaUsage(registry.location));
    return 0;
  }
  const verb = VERBS.find((v) => v.toLowerCase() === verbArg.toLowerCase());
  switch (verb) {
    case "RegisterInstance": {
      const program = REGISTER_INSTANCE_COMMAND.name;
      try {
        const values = parseOptions(REGISTER_INSTANCE_COMMAND, rest);
        const args = registerArgsFromValues(values, {
          logTriggerSizeMB: AMBROSIA_LOG_TRIGGER_SIZE_MB,
          cwd: io.cwd,
        });
        const { registration, created } = await registerInstance(args, registry);
        io.out(
          `${created ? "Registered" : "Re-registered"} ${formatRegistrationLine(registration)} in ${registry.location}`,
        );
        return 0;
      } catch (e) {
        return reportError(io, program, e);
      }
    }
    case "AddReplica": {
      const program = ADD_REPLICA_COMMAND.name;
      try {
        const values = parseOptions(ADD_REPLICA_COMMAND, rest);
        const args = addReplicaArgsFromValues(values, {
          logTriggerSizeMB: AMBROSIA_LOG_TRIGGER_SIZE_MB,
          cwd: io.cwd,
        });
        const result = await addReplica(args, registry);
        for (const key of result.ignored) {
          io.err(
            `warning: --${key} ignored: "${args.instanceName}" is already registered (use RegisterInstance)`,
          );
        }
        io.out(
          `Added replica ${args.replicaNum} of ${formatRegistrationLine(result.registration, args.replicaNum)} in ${registry.location}`,
        );
        return 0;
      } catch (e) {
        return reportError(io, program, e);
      }
    }
    case "DebugInstance": {
      const program = DEBUG_INSTANCE_COMMAND.name;
      let args: ReturnType<typeof parseDebugArgs>;
      try {
        args = parseDebugArgs(rest);
      } catch (e) {
        return reportError(io, program, e);
      }
      return launchDebugInstance(args, program, { io, registry, loadEngine: deps.loadEngine });
    }
    case undefined:
      io.err(
        `Ambrosia: error: unknown verb "${verbArg}"; expected RegisterInstance, AddReplica or DebugInstance ` +
          "(see 'Ambrosia --help')",
      );
      return EXIT_USAGE;
  }
}
