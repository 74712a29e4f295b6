import type { FileHandle } from "node:fs/promises";
import { checkBytes, createCheckBytesHasher, RECORD_HEADER_SIZE, readIntFixed } from "@immortal/wire";
import { LogCorruptionError, type LogDefect, StorageError, toStorageError } from "./errors.js";
import { type FsOps, readFully } from "./fs-ops.js";
import { DEFAULT_MAX_LOG_RECORD_SIZE, META_SEQUENCE, readRawHeader } from "./log-format.js";

export interface ScanOptions {
  /** The instance's committer ID (from the checkpoint). Units by another committer are refused. */
  readonly committerId?: number;
  /**
   * The sequence the first data record must carry: the previous log's next sequence, or the checkpoint's.
   * Without it the first unit's sequence is taken as given (then consecutive from there).
   */
  readonly expectedFirstSequence?: number;
  /** Whether this is the newest log file: only the newest can have a torn tail. */
  readonly isLastLog: boolean;
  /** Truncate a torn tail (ftruncate + fsync). Without it the tail is only reported. */
  readonly repair: boolean;
  /** Read size (default 4 MiB); a buffer grows beyond it only to hold one large unit. */
  readonly chunkSize?: number;
  /** Largest record accepted (default 256 MiB); a longer length field counts as damage. */
  readonly maxRecordSize?: number;
  /** Where the first unit starts (default 0): a standby tailing a log resumes after what it already read. */
  readonly startOffset?: number;
  /** Bytes of the file that count (default: all): a sealed log's seal, or a size observed earlier. */
  readonly endOffset?: number;
}

export interface ScannedUnit {
  readonly sequence: number;
  readonly committerId: number;
  /** Header + payload: the bytes to deliver to the binding. A view into the scan's read buffer. */
  readonly dataRecord: Uint8Array;
  /** The data record's payload (a view into `dataRecord`). */
  readonly payload: Uint8Array;
  /** The meta record's payload (a view). */
  readonly meta: Uint8Array;
  /** File offset where the unit starts. */
  readonly offset: number;
  /** Bytes of the whole unit (data record + meta record). */
  readonly length: number;
}

/** A torn or damaged tail of the newest log: everything from `truncatedAt` on was (or would be) cut off. */
export interface LogTail {
  /** The end of the last valid unit, where the file was (or would be) truncated. */
  readonly truncatedAt: number;
  readonly droppedBytes: number;
  readonly reason: LogDefect;
  readonly detail: string;
  /** Whether the file was actually truncated (only with `repair: true`). */
  readonly truncated: boolean;
}

export interface LogScanResult {
  readonly file: string;
  /** Number of valid units. */
  readonly unitCount: number;
  /** End of the last valid unit; the file's size after a repair. */
  readonly endOffset: number;
  /** The file's size when the scan started. */
  readonly fileSize: number;
  /** Committer ID of the units (the option, or the first unit's), if known. */
  readonly committerId: number | undefined;
  readonly firstSequence: number | undefined;
  /** The sequence the next unit must carry: last + 1, or `expectedFirstSequence` when the file has none. */
  readonly nextSequence: number | undefined;
  readonly tail: LogTail | undefined;
}

/** A whole scan with its units in memory (`InstanceStorage.scanLog`). */
export interface ScanResult extends LogScanResult {
  readonly units: ScannedUnit[];
  /** The tail if it was actually cut off (`repair: true`); `tail` also reports one that was only found. */
  readonly truncated: LogTail | undefined;
}

const DEFAULT_CHUNK_SIZE = 4 * 1024 * 1024;

/**
 * One pass over one log file. Iterate it (once) to receive the valid units in order; the file is read in
 * bounded chunks, never whole. When the iteration ends, `result` says where the valid part ends and what
 * tail (if any) was found; damage before the tail throws `LogCorruptionError` from the iteration, after the
 * units before it were yielded, and leaves the file untouched.
 *
 * Units are views into read buffers that are never reused, so they stay valid; a consumer that keeps one
 * for long should copy it, since a view pins its whole chunk.
 */
export class LogScan implements AsyncIterable<ScannedUnit> {
  private started = false;
  private finished: LogScanResult | undefined;

  constructor(
    readonly file: string,
    private readonly ops: FsOps,
    private readonly options: ScanOptions,
  ) {}

  [Symbol.asyncIterator](): AsyncIterator<ScannedUnit> {
    if (this.started) {
      throw new StorageError("INVALID_STATE", `scan of ${this.file} can be iterated only once`, this.file);
    }
    this.started = true;
    return this.run();
  }

  /** The outcome; available once the iteration has completed. */
  get result(): LogScanResult {
    if (this.finished === undefined) {
      throw new StorageError("INVALID_STATE", `scan of ${this.file} has not completed`, this.file);
    }
    return this.finished;
  }

  /** Runs the whole scan, keeping every unit in memory: for small logs and tests. */
  async collect(): Promise<ScanResult> {
    const units: ScannedUnit[] = [];
    for await (const unit of this) units.push(unit);
    const result = this.result;
    return { ...result, units, truncated: result.tail?.truncated ? result.tail : undefined };
  }

  private async *run(): AsyncGenerator<ScannedUnit, void, undefined> {
    const { isLastLog, repair } = this.options;
    const file = this.file;
    const ops = this.ops;
    const chunkSize = Math.max(64, this.options.chunkSize ?? DEFAULT_CHUNK_SIZE);
    const maxRecordSize = this.options.maxRecordSize ?? DEFAULT_MAX_LOG_RECORD_SIZE;
    let fh: FileHandle;
    try {
      // Only a repairing scan of the newest log may write; everything else opens read-only so that "changes
      // nothing on disk" holds by construction.
      fh = await ops.open(file, isLastLog && repair ? "r+" : "r");
    } catch (err) {
      throw toStorageError(err, file, "open log");
    }
    try {
      const fileSize = Math.min(await ops.size(fh), this.options.endOffset ?? Number.POSITIVE_INFINITY);
      const reader = new ChunkReader(ops, fh, file, fileSize, chunkSize);
      let pos = Math.min(this.options.startOffset ?? 0, fileSize);
      let committer = this.options.committerId;
      let expected = this.options.expectedFirstSequence;
      let count = 0;
      let first: number | undefined;
      let tail: LogTail | undefined;
      while (pos < fileSize) {
        const r = await parseUnit(reader, pos, committer, expected, maxRecordSize);
        if (r.kind === "ok") {
          const unit = r.unit;
          count++;
          first ??= unit.sequence;
          committer = unit.committerId;
          expected = unit.sequence + 1;
          pos += unit.length;
          yield unit;
          continue;
        }
        if (!isLastLog) throw new LogCorruptionError(file, pos, r.defect, "NOT_LAST_LOG", r.detail);
        const after = await findValidRecordAfter(
          ops,
          fh,
          file,
          fileSize,
          pos,
          r.ownMetaAt,
          committer,
          maxRecordSize,
          chunkSize,
        );
        if (after.validAt !== undefined) {
          throw new LogCorruptionError(file, pos, r.defect, "VALID_DATA_AFTER", r.detail, after.validAt);
        }
        if (repair) {
          try {
            await ops.truncate(fh, pos);
            await ops.sync(fh);
          } catch (err) {
            throw toStorageError(err, file, "truncate torn tail");
          }
        }
        tail = {
          truncatedAt: pos,
          droppedBytes: fileSize - pos,
          reason: after.allZero ? "ZERO_FILLED" : r.defect,
          detail: r.detail,
          truncated: repair,
        };
        break;
      }
      this.finished = {
        file,
        unitCount: count,
        endOffset: pos,
        fileSize,
        committerId: committer,
        firstSequence: first,
        nextSequence: expected,
        tail,
      };
    } finally {
      await ops.close(fh).catch(() => undefined);
    }
  }
}

type UnitResult =
  | { readonly kind: "ok"; readonly unit: ScannedUnit }
  /** Invalid or incomplete: a torn tail if it is in the newest log and nothing valid follows it. */
  | {
      readonly kind: "bad";
      readonly defect: LogDefect;
      readonly detail: string;
      /** Where this unit's own meta record is, when its data record is intact and so its length is trusted. */
      readonly ownMetaAt?: number;
    };

function bad(defect: LogDefect, detail: string, ownMetaAt?: number): UnitResult {
  return { kind: "bad", defect, detail, ownMetaAt };
}

async function parseUnit(
  reader: ChunkReader,
  pos: number,
  committer: number | undefined,
  expected: number | undefined,
  max: number,
): Promise<UnitResult> {
  const remaining = reader.fileSize - pos;
  if (remaining < RECORD_HEADER_SIZE)
    return bad("TRUNCATED_HEADER", `${remaining} bytes left where a header needs 24`);
  let { buf, at } = await reader.view(pos, RECORD_HEADER_SIZE);
  const h = readRawHeader(buf, at);
  if (h.length < RECORD_HEADER_SIZE || h.length > max)
    return bad("BAD_LENGTH", `data record length ${h.length}`);
  if (h.length > remaining)
    return bad("BEYOND_EOF", `data record of ${h.length} bytes with ${remaining} left`);
  // Data record plus the meta header in one view, so the unit's bytes end up contiguous in one buffer.
  ({ buf, at } = await reader.view(pos, Math.min(h.length + RECORD_HEADER_SIZE, remaining)));
  const payload = buf.subarray(at + RECORD_HEADER_SIZE, at + h.length);
  const actual = checkBytes(payload);
  if (actual !== h.checkBytes) {
    return bad(
      "BAD_CHECK_BYTES",
      `data record check bytes ${hex(h.checkBytes)}, payload hashes to ${hex(actual)}`,
    );
  }
  // The data record is intact, so its length is trusted and its own meta record is at `metaPos`.
  const metaPos = pos + h.length;
  // An intact record by another committer or out of sequence is as invalid as a damaged one; whether that
  // is a tail or corruption is decided by what follows it, like for any bad unit.
  if (committer !== undefined && h.committerId !== committer) {
    return bad("COMMITTER_MISMATCH", `record by committer ${h.committerId}, expected ${committer}`, metaPos);
  }
  if (!(h.sequence >= 0) || (expected !== undefined && h.sequence !== expected)) {
    return bad(
      "SEQUENCE_MISMATCH",
      `record with sequence ${h.sequence} where data record ${expected ?? "(any ≥ 0)"} was expected`,
      metaPos,
    );
  }
  const metaRemaining = reader.fileSize - metaPos;
  if (metaRemaining < RECORD_HEADER_SIZE) {
    return bad(
      "INCOMPLETE_META",
      `${metaRemaining} bytes after the data record where a meta header needs 24`,
      metaPos,
    );
  }
  const m = readRawHeader(buf, at + h.length);
  if (m.length < RECORD_HEADER_SIZE || m.length > max)
    return bad("BAD_META", `meta record length ${m.length}`, metaPos);
  if (m.length > metaRemaining)
    return bad("INCOMPLETE_META", `meta record of ${m.length} bytes with ${metaRemaining} left`, metaPos);
  ({ buf, at } = await reader.view(pos, h.length + m.length));
  const meta = buf.subarray(at + h.length + RECORD_HEADER_SIZE, at + h.length + m.length);
  const metaHash = checkBytes(meta);
  if (metaHash !== m.checkBytes) {
    return bad(
      "BAD_META",
      `meta record check bytes ${hex(m.checkBytes)}, payload hashes to ${hex(metaHash)}`,
      metaPos,
    );
  }
  if (m.sequence !== META_SEQUENCE || m.committerId !== h.committerId) {
    return bad(
      "BAD_META",
      `intact record (sequence ${m.sequence}, committer ${m.committerId}) where the meta record was expected`,
      metaPos,
    );
  }
  return {
    kind: "ok",
    unit: {
      sequence: h.sequence,
      committerId: h.committerId,
      dataRecord: buf.subarray(at, at + h.length),
      // Re-sliced from the final buffer: the last view() may have moved the unit to a fresh buffer.
      payload: buf.subarray(at + RECORD_HEADER_SIZE, at + h.length),
      meta,
      offset: pos,
      length: h.length + m.length,
    },
  };
}

/**
 * Sequential reads in chunks. Every refill allocates a fresh buffer (carrying over the unread part of the
 * old one), so views handed out earlier are never overwritten. A buffer is larger than the chunk size only
 * when one unit needs it.
 */
class ChunkReader {
  private buf: Buffer = Buffer.alloc(0);
  private start = 0;
  private end = 0;

  constructor(
    private readonly ops: FsOps,
    private readonly fh: FileHandle,
    private readonly file: string,
    readonly fileSize: number,
    private readonly chunkSize: number,
  ) {}

  /** Makes bytes `[pos, pos + n)` (which the caller checked lie inside the file) available in one buffer. */
  async view(pos: number, n: number): Promise<{ buf: Buffer; at: number }> {
    if (pos >= this.start && pos + n <= this.end) return { buf: this.buf, at: pos - this.start };
    const size = Math.min(Math.max(this.chunkSize, n), this.fileSize - pos);
    const next = Buffer.allocUnsafe(size);
    let kept = 0;
    if (pos >= this.start && pos < this.end) {
      kept = Math.min(this.end - pos, size);
      this.buf.copy(next, 0, pos - this.start, pos - this.start + kept);
    }
    await readFully(this.ops, this.fh, this.file, next, kept, size - kept, pos + kept);
    this.buf = next;
    this.start = pos;
    this.end = pos + size;
    return { buf: next, at: 0 };
  }
}

/**
 * Looks for evidence that data was written after a bad unit: any record from `from + 1` on with the
 * instance's committer ID (any committer when unknown), a plausible length and sequence, and matching check
 * bytes. A torn write leaves nothing valid behind it, so such a record means the damage is not a tail.
 *
 * The bad unit's own meta record is not counted: a damaged last unit must stay a tail even though its meta
 * record may be intact. When the data record is intact its length is trusted and the own meta record is
 * the one at `ownMetaAt`; when the data record is damaged (perhaps in its length field) the own meta record's
 * place is unknown, so the first valid meta record found is taken to be it. Any other valid record is
 * evidence.
 *
 * Also reports whether everything from `from` to the end is zero bytes (preallocated space).
 */
async function findValidRecordAfter(
  ops: FsOps,
  fh: FileHandle,
  file: string,
  fileSize: number,
  from: number,
  ownMetaAt: number | undefined,
  committer: number | undefined,
  max: number,
  chunkSize: number,
): Promise<{ validAt: number | undefined; allZero: boolean }> {
  // One reused buffer: nothing read here escapes this function.
  const chunk = Buffer.allocUnsafe(Math.min(chunkSize, fileSize - from));
  const zeros = Buffer.alloc(chunk.length);
  const header = Buffer.allocUnsafe(RECORD_HEADER_SIZE);
  let pattern: Buffer | undefined;
  if (committer !== undefined) {
    pattern = Buffer.allocUnsafe(4);
    pattern.writeInt32LE(committer, 0);
  }
  let scratch: Buffer | undefined;
  let allZero = true;
  // With a known own-meta position there is nothing to guess; otherwise the first meta found is excused.
  let metaExcused = ownMetaAt !== undefined;
  let lastChecked = from;

  // Returns the candidate's sequence if a valid record starts at `p`.
  const candidate = async (p: number, view: Buffer, q: number): Promise<number | undefined> => {
    let hb: Buffer;
    let ho: number;
    if (p - q + RECORD_HEADER_SIZE <= view.length) {
      hb = view;
      ho = p - q;
    } else {
      await readFully(ops, fh, file, header, 0, RECORD_HEADER_SIZE, p);
      hb = header;
      ho = 0;
    }
    // Cheap field checks first; the full header (with its bigint) only for plausible ones.
    if (committer !== undefined && readIntFixed(hb, ho) !== committer) return undefined;
    const length = readIntFixed(hb, ho + 4);
    if (length < RECORD_HEADER_SIZE || length > max || p + length > fileSize) return undefined;
    const h = readRawHeader(hb, ho);
    if (!(h.sequence >= 0 || h.sequence === META_SEQUENCE)) return undefined;
    let hash: bigint;
    if (p - q + length <= view.length) {
      hash = checkBytes(view.subarray(p - q + RECORD_HEADER_SIZE, p - q + length));
    } else {
      scratch ??= Buffer.allocUnsafe(chunk.length);
      const hasher = createCheckBytesHasher();
      for (let o = p + RECORD_HEADER_SIZE; o < p + length; ) {
        const n = Math.min(scratch.length, p + length - o);
        await readFully(ops, fh, file, scratch, 0, n, o);
        hasher.update(scratch.subarray(0, n));
        o += n;
      }
      hash = hasher.digest();
    }
    return hash === h.checkBytes ? h.sequence : undefined;
  };

  let q = from;
  for (;;) {
    const n = Math.min(chunk.length, fileSize - q);
    await readFully(ops, fh, file, chunk, 0, n, q);
    const view = chunk.subarray(0, n);
    const zero = view.equals(zeros.subarray(0, n));
    if (!zero) allZero = false;
    // In an all-zero chunk a record can only start in its last 23 bytes (its length field reaching into the
    // next chunk), and only for committer ID 0; skipping the rest keeps preallocated tails cheap.
    let i = zero ? Math.max(0, n - (RECORD_HEADER_SIZE - 1)) : 0;
    while (i < n) {
      let k: number;
      if (pattern !== undefined) {
        k = view.indexOf(pattern, i);
        if (k < 0) break;
      } else {
        k = i;
      }
      i = k + 1;
      const p = q + k;
      if (p + RECORD_HEADER_SIZE > fileSize) break;
      if (p <= lastChecked) continue;
      lastChecked = p;
      const seq = await candidate(p, view, q);
      if (seq === undefined) continue;
      if (seq === META_SEQUENCE && (p === ownMetaAt || !metaExcused)) {
        metaExcused = true;
        continue;
      }
      return { validAt: p, allZero: false };
    }
    if (q + n >= fileSize) break;
    // Overlap by three bytes so a committer ID straddling two chunks is still found.
    q += n - 3;
  }
  return { validAt: undefined, allZero };
}

function hex(v: bigint): string {
  return v.toString(16).padStart(16, "0");
}
