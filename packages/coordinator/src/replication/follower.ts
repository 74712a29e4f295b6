import { access } from "node:fs/promises";
import { FatalError } from "../cli/errors.js";
import {
  type InstanceStorage,
  LogCorruptionError,
  type LogTail,
  type ScannedUnit,
} from "../storage/index.js";
import { readSeal } from "./fencing.js";

export interface FollowOptions {
  storage: InstanceStorage;
  committerId: number;
  /** The log to start in (the recovery checkpoint's number), from its first byte. */
  firstLog: number;
  /** The sequence its first unit must carry. */
  nextSequence: number;
  /**
   * Polled while the follower waits for the primary to write more: resolves true once this replica holds the
   * lease. From then on the follower reads what is on disk, repairs a torn tail of the newest log, and ends.
   */
  promoted: () => Promise<boolean>;
  /** Pause between polls of the log files when nothing new was there. */
  pollMs: number;
  /** Handles one unit, in order; the follower waits for it (replay is paced by the binding's socket). */
  onUnit: (unit: ScannedUnit) => Promise<void>;
  /** True once the session ended: the follower stops. */
  stopped: () => boolean;
  /** Called when the follower has read log `n − 1` to its end and moves on to log `n`. */
  onNextLog?: (n: number) => Promise<void>;
}

export interface FollowResult {
  /** The newest log read, and where its valid part ends (the length to seal it at). */
  lastLog: number;
  endOffset: number;
  nextSequence: number;
  /** A torn tail cut off the newest log, if there was one. */
  tail: LogTail | undefined;
}

async function exists(file: string): Promise<boolean> {
  try {
    await access(file);
    return true;
  } catch {
    return false;
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Reads an instance's logs from `firstLog` on as the primary writes them: a standby's continuous replay, and
 * (promoted from the start) an active/active primary's recovery. Log N is finished when its seal says so or,
 * unsealed, when log N+1 existed before a read of N that reached its end (a primary writes nothing more to N
 * once it has created N+1). Checkpoints the primary writes meanwhile need no action: the standby's binding
 * already has that state.
 */
export async function followLog(o: FollowOptions): Promise<FollowResult> {
  const { storage } = o;
  let n = o.firstLog;
  let offset = 0;
  let next = o.nextSequence;
  let final = await o.promoted();
  let lastPoll = performance.now();
  for (;;) {
    if (o.stopped()) throw new Error("the session stopped");
    const sealed = await readSeal(storage.dir, n);
    const newer = await exists(storage.logPath(n + 1));
    if (!(await exists(storage.logPath(n)))) {
      throw new FatalError(
        `log ${storage.logPath(n)} is gone (deleted by the primary's checkpoint retention before this replica ` +
          "read it); restart this replica so that it starts from the newest checkpoint",
      );
    }
    const newest = !newer && sealed === undefined;
    const repair = final && newest;
    const scan = storage.streamLog(n, {
      committerId: o.committerId,
      expectedFirstSequence: next,
      isLastLog: true,
      repair,
      startOffset: offset,
      ...(sealed === undefined ? {} : { endOffset: sealed }),
    });
    let progressed = false;
    let tail: LogTail | undefined;
    try {
      for await (const unit of scan) {
        await o.onUnit(unit);
        next = unit.sequence + 1;
        offset = unit.offset + unit.length;
        progressed = true;
      }
      offset = scan.result.endOffset;
      tail = scan.result.tail;
    } catch (err) {
      // While the primary is writing, a read can catch a unit half-written; the next look sees it whole.
      if (!(err instanceof LogCorruptionError) || final) throw err;
      tail = undefined;
      await sleep(o.pollMs);
      continue;
    }
    if (repair) return { lastLog: n, endOffset: offset, nextSequence: next, tail };
    const finished = sealed !== undefined ? offset >= sealed : newer && tail === undefined;
    if (finished && newer) {
      n++;
      offset = 0;
      await o.onNextLog?.(n);
      continue;
    }
    // Sealed, and no newer log: a primary sealed it and died before opening the next one.
    if (finished && final) return { lastLog: n, endOffset: offset, nextSequence: next, tail: undefined };
    if (final && newer && tail !== undefined) {
      throw new LogCorruptionError(
        storage.logPath(n),
        offset,
        tail.reason,
        "NOT_LAST_LOG",
        `${tail.detail} (log ${n + 1} exists, so this is not a torn tail)`,
      );
    }
    const now = performance.now();
    if (!final && (!progressed || now - lastPoll >= o.pollMs)) {
      lastPoll = now;
      final = await o.promoted();
    }
    if (!progressed && !final) await sleep(o.pollMs);
  }
}
