import type { Registry } from "../registry/types.js";
import {
  type CoordinatorArgs,
  type DebugArgs,
  resolveCoordinatorArgs,
  resolveDebugArgs,
} from "./coordinator-command.js";
import { type EngineLoader, loadEngine } from "./engine.js";
import { EXIT_FAILURE, EXIT_USAGE, formatFatal, UsageError } from "./errors.js";
import type { CliIO } from "./io.js";

export interface LaunchDeps {
  io: CliIO;
  registry: Registry;
  /** Defaults to loading `../coordinator.js`; tests inject a fake engine. */
  loadEngine?: EngineLoader;
}

/**
 * Reports a launch failure. Bad arguments found while resolving (no IC port, clashing ports) are usage errors
 * on stderr (exit 2); anything else is a fatal error printed as `FATAL ERROR: …` on stdout, where AMBROSIA's IC
 * prints it and where the Node binding looks for it (exit 1).
 */
function reportLaunchError(io: CliIO, program: string, error: unknown): number {
  if (error instanceof UsageError) {
    io.err(`${program}: error: ${error.message} (see '${program} --help')`);
    return EXIT_USAGE;
  }
  io.out(formatFatal(error));
  return EXIT_FAILURE;
}

/** Resolves the options against the registry and runs the coordinator until it stops. Returns the exit code. */
export async function launchCoordinator(
  args: CoordinatorArgs,
  program: string,
  deps: LaunchDeps,
): Promise<number> {
  const { io } = deps;
  for (const warning of args.warnings) io.err(warning);
  try {
    const resolved = await resolveCoordinatorArgs(args, deps.registry, io.cwd);
    // Load the engine before pausing, so a broken build fails at once rather than after Enter.
    const engine = await (deps.loadEngine ?? loadEngine)();
    if (resolved.registration.pauseAtStart) {
      io.out(`pauseAtStart is set for instance "${resolved.options.instanceName}": press Enter to start`);
      await deps.io.waitForEnter();
    }
    await engine.runCoordinator(resolved.options);
    return 0;
  } catch (e) {
    return reportLaunchError(io, program, e);
  }
}

/** Runs DebugInstance (replay from a checkpoint) until it stops. Returns the exit code. */
export async function launchDebugInstance(
  args: DebugArgs,
  program: string,
  deps: LaunchDeps,
): Promise<number> {
  const { io } = deps;
  try {
    const options = await resolveDebugArgs(args, deps.registry, io.cwd);
    const engine = await (deps.loadEngine ?? loadEngine)();
    await engine.runDebugInstance(options);
    return 0;
  } catch (e) {
    return reportLaunchError(io, program, e);
  }
}
