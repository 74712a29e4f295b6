import path from "node:path";
import { jsonSerializer } from "@immortal/checkpoint";
import {
  divergenceHeadline,
  type Registry,
  ReproCoordinator,
  type ReproResult,
  reproSummary,
  TESTING_UPGRADE_MESSAGE,
} from "@immortal/coordinator";
import { UsageError } from "@immortal/coordinator/cli";
import { type AnyImmortalType, type Codec, Immortal } from "@immortal/sdk";
import pino from "pino";
import { loadApp } from "./dev.js";

export interface DebugOptions {
  readonly entry: string;
  readonly instance: string;
  readonly checkpoint: number;
  readonly stopAt?: number;
  readonly printState: boolean;
  /** Pace the replay one record at a time, for exact input attribution of a divergence. */
  readonly exact?: boolean;
  readonly testingUpgrade: boolean;
  /** Where the instance's registration is (its log folder and version); `logDir` overrides it. */
  readonly registry: Registry;
  readonly logDir?: string;
  readonly currentVersion?: number;
  readonly cwd: string;
  readonly codec: Codec;
  /** The app's output lines and the state (stdout). */
  readonly out: (line: string) => void;
  /** The run's own report: divergences and the summary (stderr). */
  readonly err: (line: string) => void;
}

/** Tagged JSON (@immortal/checkpoint), indented: Maps, Sets, BigInts, Dates and bytes stay recognisable. */
export function formatState(state: unknown): string {
  const text = Buffer.from(jsonSerializer.encode(state)).toString("utf8");
  return JSON.stringify(JSON.parse(text), null, 2);
}

/**
 * `immortal debug <entry> --instance <name> --checkpoint N [--stop-at SEQ] [--print-state]`: time travel. A
 * read-only repro coordinator in this process replays the instance's log from checkpoint N to the app's own
 * handlers, whose `ctx.log` lines are printed (they are silent in an ordinary recovery); the live log,
 * checkpoints and registry are never written, and the outputs the handlers regenerate are checked against
 * the live run and dropped. To step through handlers in a debugger, run this command under `node --inspect`.
 */
export async function runDebug(o: DebugOptions): Promise<number> {
  if (o.testingUpgrade) throw new UsageError(TESTING_UPGRADE_MESSAGE);
  const app = await loadApp(o.entry, o.cwd);
  const type: AnyImmortalType | undefined = app.instances[o.instance];
  if (type === undefined) {
    throw new UsageError(
      `the app has no instance "${o.instance}" (it has ${Object.keys(app.instances).join(", ")})`,
    );
  }
  const reg = await o.registry.get(o.instance);
  const logDir = o.logDir !== undefined ? path.resolve(o.cwd, o.logDir) : reg?.logDir;
  if (logDir === undefined) {
    throw new UsageError(
      `instance "${o.instance}" is not registered in ${o.registry.location}: pass its log folder with --log (-l), ` +
        "or --data <dir> for an app run with 'immortal dev --data <dir>'",
    );
  }
  const logger = pino(
    { base: { instance: o.instance, mode: "repro" }, level: process.env.IMMORTAL_LOG_LEVEL ?? "warn" },
    pino.destination(2),
  );
  const repro = await ReproCoordinator.open({
    instanceName: o.instance,
    logDir,
    currentVersion: o.currentVersion ?? reg?.currentVersion ?? 0,
    checkpoint: o.checkpoint,
    receivePort: 0,
    sendPort: 0,
    ...(o.stopAt !== undefined ? { stopAt: o.stopAt } : {}),
    exact: o.exact === true,
    logger,
    onDivergence: (d) => {
      o.err(`[debug] ${divergenceHeadline(d, o.instance)}`);
      for (const line of d.diff) o.err(`[debug]   ${line}`);
    },
  });
  const instance = new Immortal({
    instanceName: o.instance,
    type: type as never,
    receivePort: repro.receivePort,
    sendPort: repro.sendPort,
    codec: o.codec,
    logSink: o.out,
    logWhileReplaying: true,
  });
  try {
    await instance.start();
    const failed = instance.closed.then((info): never => {
      throw new Error(
        `the instance stopped during the replay (${info.reason}${info.error === undefined ? "" : `: ${info.error.message}`})`,
      );
    });
    failed.catch(() => undefined); // closing it ourselves below is not a failure
    const result: ReproResult = await Promise.race([repro.finished, failed]);
    o.err(`[debug] ${reproSummary(result)}`);
    if (o.printState) {
      const at =
        result.stoppedAt !== undefined
          ? `after record ${result.stoppedAt}`
          : `at the end of the log (after record ${result.lastSequence})`;
      o.out(`[debug] state of ${o.instance} ${at}:`);
      o.out(formatState(instance.state));
    }
    return 0;
  } finally {
    await instance.close().catch(() => undefined);
    await repro.stop();
  }
}
