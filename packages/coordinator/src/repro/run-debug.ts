import type { DebugLaunchOptions } from "../cli/engine.js";
import { FatalError } from "../cli/errors.js";
import { divergenceHeadline } from "../determinism/index.js";
import { ReproCoordinator, type ReproResult } from "./repro.js";

/** The what-if variant (`--testingUpgrade`) is not this module's: it is `immortal whatif`. */
export const TESTING_UPGRADE_MESSAGE =
  "--testingUpgrade (-tu): what-if upgrade tests live in 'immortal whatif' (being built on another branch); " +
  "DebugInstance here replays the log on the current code, without upgrading";

/** One line summing up a finished repro run. */
export function reproSummary(r: ReproResult): string {
  const range = r.records === 0 ? "no records" : `records ${r.firstSequence}–${r.lastSequence}`;
  const where = r.stoppedAt !== undefined ? `stopped at ${r.stoppedAt}` : "end of the log";
  const outs = Object.entries(r.outputs)
    .map(([d, n]) => `${d === "" ? "self" : d} ${n}`)
    .join(", ");
  const det = r.determinism;
  const check =
    det === undefined
      ? "determinism not checked"
      : `determinism: ${det.checkedOutputs} outputs checked, ${det.divergences} divergences, ${det.uncheckedOutputs} without a record` +
        (det.notLoaded > 0 ? ` (${det.notLoaded} recorded outputs beyond the memory bound not loaded)` : "");
  return `Replay finished: checkpoint ${r.checkpoint}, ${range} (${where}); outputs regenerated (not sent): ${outs === "" ? "none" : outs}; ${check}`;
}

/**
 * `Ambrosia DebugInstance` / `immortal debug` without an app: a repro coordinator for an external binding (for
 * example one started under `node --inspect`). Prints `Ready`, `Connected!`, any divergence and a summary,
 * then stays until the binding disconnects or SIGTERM/SIGINT, so a debugger can keep inspecting.
 */
export async function runDebugInstance(o: DebugLaunchOptions): Promise<void> {
  if (o.testingUpgrade) throw new FatalError(TESTING_UPGRADE_MESSAGE);
  const out = (line: string) => process.stdout.write(`${line}\n`);
  const repro = await ReproCoordinator.open({
    instanceName: o.instanceName,
    logDir: o.logDir,
    currentVersion: o.currentVersion,
    checkpoint: o.checkpoint,
    receivePort: o.receivePort,
    sendPort: o.sendPort,
    ...(o.stopAt !== undefined ? { stopAt: o.stopAt } : {}),
    exact: o.exact === true,
    out,
    onDivergence: (d) => {
      process.stderr.write(
        `${divergenceHeadline(d, o.instanceName)}\n${d.diff.map((l) => `  ${l}\n`).join("")}`,
      );
    },
  });
  const signalled = new Promise<void>((resolve) => {
    process.once("SIGTERM", () => resolve());
    process.once("SIGINT", () => resolve());
  });
  try {
    const done = await Promise.race([repro.finished, signalled.then(() => undefined)]);
    if (done !== undefined) {
      out(reproSummary(done));
      await Promise.race([repro.bindingClosed, signalled]);
    }
  } finally {
    await repro.stop();
  }
}
