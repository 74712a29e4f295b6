import { readdir, readFile } from "node:fs/promises";
import path from "node:path";
import { checkBytes, NEED_MORE, tryReadZigZagInt, type VarintResult } from "@immortal/wire";
import { parseStorageFileName } from "../storage/layout.js";
import { decodeDigestFile, type RecordedOutput } from "./format.js";

/** What the replayed side of a divergence looked like. */
export interface OutputSummary {
  readonly length: number;
  /** xxHash64 of the whole RPC frame, 16 hex digits. */
  readonly hash: string;
  readonly methodId?: number;
  readonly rpcType?: number;
}

/**
 * The first output of a replay that does not match what the live run produced. `differs`: the fork with this
 * number has other bytes; `missing`: the replay ended without producing it.
 */
export interface Divergence {
  readonly kind: "differs" | "missing";
  /**
   * The input record that produced the output in the live run: the newest record the coordinator had delivered
   * to the binding when the output arrived (exact when the binding kept up with delivery, as in a chain of
   * calls; otherwise a record shortly after the right one).
   */
  readonly inputSequence: number;
  /**
   * The same, measured in this replay: only an upper bound when replay delivers records in bursts, exact when
   * the replay paced them one at a time (`inputExact`; `inputSequence` is then this one).
   */
  readonly replayInputSequence?: number;
  readonly inputExact?: boolean;
  /** With `inputExact`: what the live run's attribution said. */
  readonly recordedInputSequence?: number;
  /** Destination instance; "" is the instance itself. */
  readonly destination: string;
  readonly fork: number;
  readonly recorded: OutputSummary;
  readonly replayed?: OutputSummary;
  /** Offset in the frame of the first differing byte, when it lies within the recorded sample. */
  readonly firstDifference?: number;
  /** Human-readable lines: header fields and hex of both frames around the first difference. */
  readonly diff: readonly string[];
}

export interface CheckerStats {
  /** Recorded outputs loaded for this replay. */
  recordedOutputs: number;
  /** Regenerated outputs compared with a record. */
  checkedOutputs: number;
  /** Regenerated outputs with no record (recorded before the digests existed, or lost in a crash). */
  uncheckedOutputs: number;
  divergences: number;
  /** Recorded outputs beyond `maxRecorded` that were not loaded (their forks count as unchecked). */
  notLoaded: number;
}

/**
 * At most this many recorded outputs are held for one replay (about 250 bytes of memory each): a replay over
 * logs of hundreds of millions of tiny messages checks the first ones instead of exhausting memory.
 */
export const DEFAULT_MAX_RECORDED = 1_000_000;

const hex16 = (h: bigint) => h.toString(16).padStart(16, "0");

interface RpcHead {
  methodId: number;
  rpcType: number;
  argsAt: number;
}

/** The RPC header of a frame in the incoming layout: [size][type 0][reserved][methodId][rpcType][args]. */
function rpcHead(frame: Uint8Array): RpcHead | undefined {
  const r: VarintResult = { value: 0, next: 0 };
  try {
    if (tryReadZigZagInt(frame, 0, frame.length, r) === NEED_MORE) return undefined;
    const at = r.next + 2; // type byte, reserved byte
    if (tryReadZigZagInt(frame, at, frame.length, r) === NEED_MORE) return undefined;
    const methodId = r.value;
    if (r.next >= frame.length) return undefined;
    return { methodId, rpcType: frame[r.next]!, argsAt: r.next + 1 };
  } catch {
    return undefined;
  }
}

const WINDOW = 16;

/** A frame no longer than the sample was recorded whole, without a hash. */
function isWhole(rec: RecordedOutput): boolean {
  return rec.sample.length === rec.length;
}

function recordedHash(rec: RecordedOutput): bigint {
  return isWhole(rec) ? checkBytes(rec.sample) : rec.hash;
}

function hexWindow(bytes: Uint8Array, from: number, to: number, argsAt: number | undefined): string {
  const parts: string[] = [];
  for (let i = from; i < Math.min(to, bytes.length); i++) parts.push(bytes[i]!.toString(16).padStart(2, "0"));
  const where = argsAt !== undefined && from >= argsAt ? `args+${from - argsAt}` : `byte ${from}`;
  return `${where}: ${parts.join(" ")}${to < bytes.length ? " …" : ""}`;
}

function summary(frame: Uint8Array, hash: bigint, length: number): OutputSummary {
  const h = rpcHead(frame);
  return h === undefined
    ? { length, hash: hex16(hash) }
    : { length, hash: hex16(hash), methodId: h.methodId, rpcType: h.rpcType };
}

function describe(s: OutputSummary): string {
  const head = s.methodId === undefined ? "" : `method ${s.methodId}, rpc type ${s.rpcType}, `;
  return `${head}${s.length} bytes, xxHash64 ${s.hash}`;
}

/**
 * Compares the outputs a replay regenerates with what the live run recorded (`DigestRecorder`). Outputs are
 * matched by (destination, fork number), which replay reproduces exactly when the handlers are deterministic;
 * the first mismatch is reported with a diff, later ones are counted. Usable by any replay: recovery, repro /
 * time-travel runs, and active/active standbys (load once, then `check` each regenerated fork in order).
 */
export class DeterminismChecker {
  private readonly recorded = new Map<string, Map<number, RecordedOutput>>();
  private reported = false;
  readonly stats: CheckerStats = {
    recordedOutputs: 0,
    checkedOutputs: 0,
    uncheckedOutputs: 0,
    divergences: 0,
    notLoaded: 0,
  };

  private constructor(private readonly maxRecorded: number) {}

  /**
   * Loads the digests a replay from checkpoint `checkpoint` can regenerate: those of logs from `checkpoint − 1`
   * on (an output can arrive while the checkpoint is being taken, before the log number moves), minus the
   * forks the checkpoint already holds (`forkGenerated` per destination, from its coordinator state).
   */
  static async load(
    dir: string,
    checkpoint: number,
    forkGenerated: ReadonlyMap<string, number>,
    maxRecorded = DEFAULT_MAX_RECORDED,
  ): Promise<DeterminismChecker> {
    const c = DeterminismChecker.create(forkGenerated, maxRecorded);
    let names: string[];
    try {
      names = await readdir(dir);
    } catch {
      return c;
    }
    const files = names
      .map((name) => ({ name, parsed: parseStorageFileName(name) }))
      .filter((f) => f.parsed?.kind === "digest" && f.parsed.n >= checkpoint - 1)
      .sort((a, b) => a.parsed!.n - b.parsed!.n);
    for (const f of files) c.ingest(await readFile(path.join(dir, f.name)));
    return c;
  }

  /** A checker with nothing loaded yet, for a replay that `ingest`s digests as they appear (a standby). */
  static create(
    forkGenerated: ReadonlyMap<string, number>,
    maxRecorded = DEFAULT_MAX_RECORDED,
  ): DeterminismChecker {
    const c = new DeterminismChecker(maxRecorded);
    c.forkGenerated = forkGenerated;
    return c;
  }

  private forkGenerated: ReadonlyMap<string, number> = new Map();
  /** Records held now (checked ones are dropped, so a long-running standby never reaches the cap). */
  private loaded = 0;
  /** Per destination, the highest fork seen in any digest (held, skipped or over the cap). */
  private readonly highest = new Map<string, number>();

  /**
   * Whether a regenerated fork can be decided now: its record is held, or a later fork to the same destination
   * was recorded (a recorder writes each destination's forks in order, so this one's record will never come).
   */
  decidable(destination: string, fork: number): boolean {
    return (this.highest.get(destination) ?? 0) >= fork;
  }

  /**
   * Adds digests (a digest file's bytes from a frame boundary on) and returns how many bytes were valid. For a
   * replay that follows a growing log, as an active/active standby does: read the new part of `serverdigest<N>`
   * from the returned offset, ingest it, and check the forks regenerated meanwhile.
   */
  ingest(bytes: Uint8Array): number {
    return decodeDigestFile(bytes, (dest, fork, out) => {
      if (fork > (this.highest.get(dest) ?? 0)) this.highest.set(dest, fork);
      if (fork <= (this.forkGenerated.get(dest) ?? 0)) return;
      if (this.loaded >= this.maxRecorded) {
        this.stats.notLoaded++;
        return;
      }
      let m = this.recorded.get(dest);
      if (m === undefined) {
        m = new Map();
        this.recorded.set(dest, m);
      }
      if (!m.has(fork)) {
        this.stats.recordedOutputs++;
        this.loaded++;
      }
      m.set(fork, out);
    });
  }

  /** One regenerated fork. Returns the divergence if this is the first one. */
  check(
    destination: string,
    fork: number,
    frame: Uint8Array,
    replayInputSequence: number,
    replayExact = false,
  ): Divergence | undefined {
    const m = this.recorded.get(destination);
    const rec = m?.get(fork);
    if (rec === undefined) {
      this.stats.uncheckedOutputs++;
      return undefined;
    }
    m!.delete(fork);
    this.loaded--;
    this.stats.checkedOutputs++;
    if (frame.length === rec.length) {
      // A short frame was recorded whole (no hash): compare the bytes.
      const same = isWhole(rec) ? Buffer.compare(rec.sample, frame) === 0 : checkBytes(frame) === rec.hash;
      if (same) return undefined;
    }
    const hash = checkBytes(frame);
    this.stats.divergences++;
    if (this.reported) return undefined;
    this.reported = true;
    const d = differs(destination, fork, rec, frame, hash, replayInputSequence);
    if (!replayExact) return d;
    return {
      ...d,
      inputSequence: replayInputSequence,
      inputExact: true,
      recordedInputSequence: rec.inputSequence,
      diff: [
        `input record ${replayInputSequence}, exact (records replayed one at a time); the live run's estimate was ${rec.inputSequence}`,
        ...d.diff,
      ],
    };
  }

  /**
   * The replay is over and all its outputs have arrived. With `complete` (the whole log was replayed), a
   * recorded fork that was never regenerated is a divergence too; the first such one is returned.
   */
  finish(complete: boolean): Divergence | undefined {
    let first: { destination: string; fork: number; rec: RecordedOutput } | undefined;
    for (const [destination, m] of this.recorded) {
      for (const [fork, rec] of m) {
        if (first === undefined || rec.inputSequence < first.rec.inputSequence)
          first = { destination, fork, rec };
      }
    }
    this.recorded.clear();
    if (!complete || first === undefined) return undefined;
    this.stats.divergences++;
    if (this.reported) return undefined;
    this.reported = true;
    const recorded = summary(first.rec.sample, recordedHash(first.rec), first.rec.length);
    return {
      kind: "missing",
      inputSequence: first.rec.inputSequence,
      destination: first.destination,
      fork: first.fork,
      recorded,
      diff: [
        `recorded: ${describe(recorded)}`,
        "replayed: (nothing: the replay ended without producing this output)",
        `recorded ${hexWindow(first.rec.sample, 0, 2 * WINDOW, rpcHead(first.rec.sample)?.argsAt)}`,
      ],
    };
  }
}

function differs(
  destination: string,
  fork: number,
  rec: RecordedOutput,
  frame: Uint8Array,
  hash: bigint,
  replayInputSequence: number,
): Divergence {
  const recorded = summary(rec.sample, recordedHash(rec), rec.length);
  const replayed = summary(frame, hash, frame.length);
  const diff = [`recorded: ${describe(recorded)}`, `replayed: ${describe(replayed)}`];
  const n = Math.min(rec.sample.length, frame.length);
  let at = 0;
  while (at < n && rec.sample[at] === frame[at]) at++;
  let firstDifference: number | undefined;
  if (at < n || (at === n && rec.sample.length === rec.length && rec.length !== frame.length)) {
    firstDifference = at;
    const from = Math.max(0, at - WINDOW);
    const to = at + WINDOW;
    const argsAt = rpcHead(frame)?.argsAt;
    diff.push(
      `first difference at ${argsAt !== undefined && at >= argsAt ? `args+${at - argsAt}` : `byte ${at}`}`,
    );
    diff.push(`recorded ${hexWindow(rec.sample, from, to, argsAt)}`);
    diff.push(`replayed ${hexWindow(frame, from, to, argsAt)}`);
  } else {
    diff.push(
      `the first ${rec.sample.length} bytes (all that was recorded) are equal; the bytes after them differ`,
    );
  }
  const d: Divergence = {
    kind: "differs",
    inputSequence: rec.inputSequence,
    replayInputSequence,
    destination,
    fork,
    recorded,
    replayed,
    diff,
  };
  return firstDifference === undefined ? d : { ...d, firstDifference };
}

/** One line for operators: where the replay first diverged. */
export function divergenceHeadline(d: Divergence, instance: string): string {
  const dest = d.destination === "" ? `${instance} (self)` : d.destination;
  const what = d.kind === "differs" ? "differs from the live run" : "was not produced by the replay";
  return `DIVERGENCE at input record ${d.inputSequence}: output fork ${d.fork} to ${dest} ${what}`;
}
