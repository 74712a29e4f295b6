import { FolderRegistry } from "../registry/folder-registry.js";
import type { FrontEndDeps } from "./ambrosia.js";
import { IMMORTAL_COORDINATOR_COMMAND, parseCoordinatorArgs } from "./coordinator-command.js";
import { processIO, reportError } from "./io.js";
import { launchCoordinator } from "./launch.js";

/**
 * AMBROSIA's `ImmortalCoordinator` executable: parse AMBROSIA's options, merge them with the registration
 * ($IMMORTAL_HOME or ./.immortal) and run the coordinator until it stops. Returns the exit code.
 */
export async function runImmortalCoordinator(
  argv: readonly string[],
  deps: FrontEndDeps = {},
): Promise<number> {
  const io = deps.io ?? processIO();
  const program = IMMORTAL_COORDINATOR_COMMAND.name;
  let args: ReturnType<typeof parseCoordinatorArgs>;
  try {
    args = parseCoordinatorArgs(argv);
  } catch (e) {
    return reportError(io, program, e);
  }
  const registry = deps.registry ?? FolderRegistry.open({ env: io.env, cwd: io.cwd });
  return launchCoordinator(args, program, { io, registry, loadEngine: deps.loadEngine });
}
