/**
 * The coordinator's command-line front ends (`ImmortalCoordinator`, `Ambrosia`) and everything `@immortal/cli`
 * builds on: option tables, the AMBROSIA argv normalizer, option resolution and the registry. Published as the
 * `@immortal/coordinator/cli` subpath.
 */
import { runAmbrosia } from "./ambrosia.js";
import { runImmortalCoordinator } from "./immortal-coordinator.js";

export * from "../registry/index.js";
export {
  ADD_REPLICA_COMMAND,
  AMBROSIA_DEFAULT_LOG_TEXT,
  type FrontEndDeps,
  REGISTER_INSTANCE_COMMAND,
  runAmbrosia,
} from "./ambrosia.js";
export {
  type CoordinatorArgs,
  coordinatorArgsFromValues,
  DEBUG_INSTANCE_COMMAND,
  type DebugArgs,
  debugArgsFromValues,
  IMMORTAL_COORDINATOR_COMMAND,
  parseCoordinatorArgs,
  parseDebugArgs,
  type ResolvedCoordinator,
  resolveCoordinatorArgs,
  resolveCoordinatorOptions,
  resolveDebugArgs,
  resolveDebugOptions,
} from "./coordinator-command.js";
export {
  type CoordinatorEngine,
  type CoordinatorLaunchOptions,
  type DebugLaunchOptions,
  type EngineLoader,
  loadEngine,
} from "./engine.js";
export { EXIT_FAILURE, EXIT_USAGE, FatalError, formatFatal, HelpRequested, UsageError } from "./errors.js";
export { formatRegistration, formatRegistrationLine, formatRegistrationTable } from "./format.js";
export { runImmortalCoordinator } from "./immortal-coordinator.js";
export { type CliIO, processIO, reportError } from "./io.js";
export { type LaunchDeps, launchCoordinator, launchDebugInstance } from "./launch.js";
export { normalizeArgv } from "./normalize.js";
export {
  addReplicaOptions,
  COORDINATOR_OPTIONS,
  DEBUG_OPTIONS,
  type OptionKind,
  type OptionSpec,
  optionLabel,
  registerOptions,
} from "./options.js";
export {
  addSpecOptions,
  type CommanderSink,
  type CommandSpec,
  commanderMessage,
  convertOptionValues,
  HELP_CONFIGURATION,
  helpText,
  type OptionValue,
  OptionValues,
  parseOptions,
  prepareCommand,
  runCommander,
  SpecOption,
} from "./parse.js";
export {
  type AddReplicaArgs,
  type AddReplicaResult,
  AMBROSIA_LOG_TRIGGER_SIZE_MB,
  addReplica,
  addReplicaArgsFromValues,
  ambrosiaDefaultLogDir,
  instanceNameFrom,
  type RegisterArgs,
  type RegisterDefaults,
  type RegisterResult,
  registerArgsFromValues,
  registerInstance,
} from "./register-command.js";

/**
 * Exits with `code` once stdout and stderr have flushed. The coordinator front ends exit explicitly: once the
 * engine has stopped (or failed) nothing it left behind — a socket, a timer — may keep the process alive, just
 * as AMBROSIA's IC kills itself on a fatal error.
 */
export async function exitAfterFlush(code: number): Promise<never> {
  await Promise.all(
    [process.stdout, process.stderr].map(
      (stream) =>
        new Promise<void>((resolveFlush) => {
          stream.write("", () => resolveFlush());
        }),
    ),
  );
  process.exit(code);
}

/** Entry point of bin/ImmortalCoordinator.mjs. */
export async function runImmortalCoordinatorProcess(argv: readonly string[]): Promise<never> {
  return exitAfterFlush(await runImmortalCoordinator(argv));
}

/** Entry point of bin/Ambrosia.mjs. */
export async function runAmbrosiaProcess(argv: readonly string[]): Promise<never> {
  return exitAfterFlush(await runAmbrosia(argv));
}
