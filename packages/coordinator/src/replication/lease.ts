import { randomUUID } from "node:crypto";
import { existsSync } from "node:fs";
import { link, mkdir, open, readdir, readFile, unlink, writeFile } from "node:fs/promises";
import path from "node:path";
import { Worker } from "node:worker_threads";

/** Monotonic milliseconds on a clock every thread of the process shares (`performance.now()` is per thread). */
export function monoMs(): number {
  return Number(process.hrtime.bigint()) / 1e6;
}

/**
 * The holder's renewal loop, run in a worker thread with synchronous file calls: neither a busy event loop
 * (a large checkpoint, GC, replay) nor fdatasyncs queued in libuv's thread pool can delay a renewal. The
 * shared memory holds the validity deadline (f64, monotonic ms), a state word (0 holding, 1 lost, 2 stop) and
 * the main thread's heartbeat: a main thread that has not run for `stallMs` lets the lease go, so a hung
 * primary is replaced rather than kept alive by its renewer.
 */
const RENEWER = `
const { workerData: w, parentPort } = require("node:worker_threads");
const fs = require("node:fs");
const path = require("node:path");
const deadline = new Float64Array(w.shared, 0, 1);
const words = new Int32Array(w.shared, 8, 3);
const mono = () => Number(process.hrtime.bigint()) / 1e6;
const lost = (reason) => {
  Atomics.store(words, 0, 1);
  parentPort.postMessage(reason);
};
// Renewals must not starve behind the process's own busy threads on a loaded machine: raise this thread's
// priority where allowed (Linux: per thread; silently unchanged without the privilege).
try {
  const tid = Number(fs.readlinkSync("/proc/thread-self").split("/").pop());
  require("node:os").setPriority(tid, -10);
} catch {}
parentPort.postMessage("ready");
// Idle (3) until the main thread took a lease and stored its epoch.
while (Atomics.load(words, 0) === 3) Atomics.wait(words, 0, 3);
const epoch = Atomics.load(words, 2);
const file = path.join(w.dir, "lease." + epoch);
const nextFile = path.join(w.dir, "lease." + (epoch + 1));
let renewal = 0;
let beat = Atomics.load(words, 1);
let beatAt = mono();
let fd;
try { fd = fs.openSync(file, "r+"); } catch (err) { lost("cannot open the lease file: " + (err && err.message)); }
while (fd !== undefined) {
  Atomics.wait(words, 0, 0, w.renewMs);
  if (Atomics.load(words, 0) !== 0) break;
  const started = mono();
  if (started > deadline[0]) { lost("the lease on the log (epoch " + epoch + ") was not renewed in time; another replica may have taken over"); break; }
  if (fs.existsSync(nextFile)) { lost("another replica took the lease on the log (epoch " + (epoch + 1) + ")"); break; }
  const b = Atomics.load(words, 1);
  if (b !== beat) { beat = b; beatAt = started; }
  else if (started - beatAt > w.stallMs) { lost("the coordinator's event loop has not run for " + Math.round(started - beatAt) + " ms; giving the lease up"); break; }
  try {
    renewal++;
    const rec = Buffer.from(JSON.stringify({ owner: w.owner, pid: process.pid, epoch, renewal }).padEnd(w.size - 1) + "\\n");
    fs.writeSync(fd, rec, 0, rec.length, 0);
    deadline[0] = started + w.ttlMs - w.marginMs;
  } catch (err) {
    lost("renewing the lease failed: " + (err && err.message));
    break;
  }
}
`;

/** This replica does not (or no longer) hold the lease on the log; it must not write. */
export class LeaseLostError extends Error {
  override readonly name = "LeaseLostError";
}

/**
 * Exclusive, expiring ownership of an instance's shared log: exactly one active/active replica (the primary)
 * holds it and may write. Kept small so that another store can implement it: an Azure blob lease maps
 * `tryAcquire` to Acquire Lease (or Break Lease once the holder stopped renewing) on the log's blob,
 * `renew` to Renew Lease, the epoch to a counter in the blob's metadata set with the lease id, and
 * `assertHeld` to the same local check with margin — while the blob service itself refuses every write
 * that does not carry the current lease id, which is the fencing token a local disk cannot enforce.
 */
export interface LogLease {
  /**
   * Takes the lease if nobody holds it or its holder stopped renewing it for a whole `ttlMs`; resolves with
   * the new epoch (fencing token, strictly increasing over the instance's life), or undefined when another
   * replica's lease is live. Never waits.
   */
  tryAcquire(): Promise<number | undefined>;
  /** Throws `LeaseLostError` unless this process holds the lease with at least the safety margin left. */
  assertHeld(what: string): void;
  readonly held: boolean;
  readonly epoch: number | undefined;
  /** Called once, when a held lease is lost (not renewed in time, or another replica took a newer epoch). */
  onLost(listener: (err: LeaseLostError) => void): void;
  /** Gives the lease up (a standby may take it at once). Idempotent. */
  release(): Promise<void>;
}

export interface LeaseTiming {
  /** How long a lease lasts without renewal, as measured by the replicas that wait for it. */
  ttlMs: number;
  /** How often the holder renews. */
  renewMs: number;
  /**
   * How long before its lease could be taken the holder stops writing: it covers the time between a check
   * and the write it guards, and differences between the holder's and a standby's clock rates.
   */
  marginMs: number;
}

/** Defaults sized for failover well under half a second on one machine; `IMMORTAL_LEASE_MS` overrides ttl. */
export function leaseTiming(ttlMs = Number(process.env.IMMORTAL_LEASE_MS ?? 300)): LeaseTiming {
  const ttl = Number.isFinite(ttlMs) && ttlMs >= 30 ? ttlMs : 300;
  return { ttlMs: ttl, renewMs: Math.max(5, Math.floor(ttl / 6)), marginMs: Math.floor(ttl / 3) };
}

interface LeaseRecord {
  owner: string;
  pid: number;
  epoch: number;
  /** Bumped at every renewal: waiting replicas time the lease by watching this change, not by a clock. */
  renewal: number;
  /** True once the holder released it: it may be taken at once. */
  released?: boolean;
}

const LEASE_RE = /^lease\.([1-9][0-9]*)$/;
/**
 * Lease records are padded to one fixed size and renewed by one in-place write at offset 0: no rename, no
 * change of size, so a renewal is a single page-cache write that a busy journal (fdatasyncs of the log on the
 * same disk) delays far less than a create-and-rename would, and a reader never sees a partial record.
 */
const RECORD_SIZE = 256;

/**
 * `LogLease` on a local (or shared) file system, in the instance's log folder.
 *
 * - Epoch E is the file `lease.E`. Taking epoch E+1 is `link(tmp, "lease.E+1")`, which fails with EEXIST for
 *   all but one of any number of racing replicas: exactly one primary per epoch, by the file system's
 *   atomic create.
 * - The holder renews by rewriting `lease.E` in place with a bumped `renewal` counter. A waiting
 *   replica decides expiry with *its own monotonic clock*: the lease is dead once the file's (epoch, renewal)
 *   has not changed for `ttlMs` since this replica first saw that value. No wall clock and no clock
 *   synchronisation are involved (AMBROSIA's blob lease breaker uses the same "unchanged since my last look"
 *   rule with ETags).
 * - The holder counts its lease valid until `ttlMs − marginMs` after the *start* of its last successful
 *   renewal (monotonic clock). Its renewal becomes visible after that start, and a waiter starts its `ttlMs`
 *   after seeing it, so the holder stops at least `marginMs` before anyone can take over.
 * - `assertHeld` also looks for `lease.E+1`. A new primary creates it *before* it reads the log, and the
 *   fenced storage asserts after every fdatasync, before a commit is reported: so each reported commit was on
 *   disk before the new primary started reading — whatever the clocks did. The time check bounds how long a
 *   stalled holder can go on; the epoch check makes the hand-over exact.
 * - Renewal runs in a worker thread (see RENEWER), so a busy event loop does not lose the lease.
 */
export class FileLogLease implements LogLease {
  private heldEpoch: number | undefined;
  private lostError: LeaseLostError | undefined;
  private readonly listeners: Array<(err: LeaseLostError) => void> = [];
  /**
   * [0, 8): validity deadline (f64, monotonic ms); then int32 words: state (0 holding, 1 lost, 2 stopped,
   * 3 idle), the main thread's heartbeat, the epoch held.
   */
  private readonly shared = new SharedArrayBuffer(24);
  private readonly deadline = new Float64Array(this.shared, 0, 1);
  private readonly words = new Int32Array(this.shared, 8, 3);
  private worker: Worker | undefined;
  private workerReady: Promise<void> | undefined;
  private heartbeat: NodeJS.Timeout | undefined;
  /** The (epoch, renewal) this replica last saw, and when (monotonic ms). */
  private seen: { key: string; at: number } | undefined;

  constructor(
    readonly dir: string,
    readonly owner: string,
    readonly timing: LeaseTiming = leaseTiming(),
    /** A main thread that has not run for this long gives the lease up (default 10 × ttl, at least 3 s). */
    readonly stallMs: number = Math.max(3000, 10 * timing.ttlMs),
  ) {}

  get held(): boolean {
    return this.heldEpoch !== undefined && this.lostError === undefined;
  }

  get epoch(): number | undefined {
    return this.heldEpoch;
  }

  private file(epoch: number): string {
    return path.join(this.dir, `lease.${epoch}`);
  }

  onLost(listener: (err: LeaseLostError) => void): void {
    this.listeners.push(listener);
  }

  async tryAcquire(): Promise<number | undefined> {
    if (this.held) return this.heldEpoch;
    if (this.lostError !== undefined) return undefined;
    await mkdir(this.dir, { recursive: true });
    // The renewer is started (a new V8 isolate: tens of milliseconds, more under load) before the lease is
    // taken, so that the first renewal is not late.
    await this.startRenewer();
    const top = await this.topEpoch();
    if (top !== undefined) {
      const rec = await this.read(top);
      // An unreadable record (being replaced right now) counts as a renewal in progress.
      const key = rec === undefined ? `${top}:?` : `${top}:${rec.renewal}`;
      const now = monoMs();
      if (rec?.released !== true) {
        if (this.seen?.key !== key) {
          this.seen = { key, at: now };
          return undefined;
        }
        if (now - this.seen.at < this.timing.ttlMs) return undefined;
      }
    }
    const epoch = (top ?? 0) + 1;
    const started = monoMs();
    const tmp = `${this.file(epoch)}.${process.pid}.${randomUUID()}.tmp`;
    await writeFile(tmp, this.encode(epoch, 0));
    try {
      await link(tmp, this.file(epoch));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "EEXIST") return undefined;
      throw err;
    } finally {
      await unlink(tmp).catch(() => undefined);
    }
    this.heldEpoch = epoch;
    this.deadline[0] = started + this.timing.ttlMs - this.timing.marginMs;
    Atomics.store(this.words, 2, epoch);
    Atomics.store(this.words, 0, 0);
    Atomics.notify(this.words, 0);
    this.heartbeat = setInterval(() => Atomics.add(this.words, 1, 1), this.timing.renewMs);
    this.heartbeat.unref();
    // Older epochs are history; keep the previous one so a deposed holder still finds its own file.
    for (const n of await this.epochs()) {
      if (n < epoch - 1) await unlink(this.file(n)).catch(() => undefined);
    }
    return epoch;
  }

  private startRenewer(): Promise<void> {
    if (this.workerReady !== undefined) return this.workerReady;
    const { ttlMs, renewMs, marginMs } = this.timing;
    Atomics.store(this.words, 0, 3);
    const worker = new Worker(RENEWER, {
      eval: true,
      workerData: {
        shared: this.shared,
        dir: this.dir,
        size: RECORD_SIZE,
        owner: this.owner,
        ttlMs,
        renewMs,
        marginMs,
        stallMs: this.stallMs,
      },
    });
    this.worker = worker;
    worker.unref();
    this.workerReady = new Promise<void>((resolve, reject) => {
      worker.once("error", reject);
      worker.on("message", (m: string) => {
        if (m === "ready") resolve();
        else this.lose(m);
      });
    });
    worker.on("error", (err) => this.lose(`the lease renewer failed: ${err.message}`));
    return this.workerReady;
  }

  assertHeld(what: string): void {
    if (this.lostError !== undefined) throw this.lostError;
    if (this.heldEpoch === undefined) {
      throw new LeaseLostError(`${what}: this replica does not hold the lease on the log`);
    }
    if (Atomics.load(this.words, 0) === 1) {
      throw this.lose(`${what}: the lease on the log (epoch ${this.heldEpoch}) was lost`);
    }
    if (monoMs() > this.deadline[0]!) {
      throw this.lose(
        `${what}: the lease on the log (epoch ${this.heldEpoch}) was not renewed in time; ` +
          "another replica may have taken over",
      );
    }
    if (existsSync(this.file(this.heldEpoch + 1))) {
      throw this.lose(`${what}: another replica took the lease on the log (epoch ${this.heldEpoch + 1})`);
    }
  }

  private stopRenewer(): void {
    if (this.heartbeat !== undefined) clearInterval(this.heartbeat);
    if (Atomics.load(this.words, 0) === 0) Atomics.store(this.words, 0, 2);
    Atomics.notify(this.words, 0);
    void this.worker?.terminate();
    this.worker = undefined;
  }

  private lose(reason: string): LeaseLostError {
    if (this.lostError !== undefined) return this.lostError;
    const err = new LeaseLostError(reason);
    this.lostError = err;
    this.stopRenewer();
    for (const l of this.listeners) l(err);
    return err;
  }

  async release(): Promise<void> {
    if (!this.held) {
      this.stopRenewer();
      return;
    }
    const epoch = this.heldEpoch!;
    this.lostError = new LeaseLostError("the lease was released");
    this.stopRenewer();
    try {
      if (existsSync(this.file(epoch + 1))) return;
      const fh = await open(this.file(epoch), "r+");
      try {
        await fh.write(this.encode(epoch, -1, true), 0, "utf8");
      } finally {
        await fh.close();
      }
    } catch {
      // A lease that could not be marked released simply expires.
    }
  }

  private encode(epoch: number, renewal: number, released = false): string {
    const rec: LeaseRecord = { owner: this.owner, pid: process.pid, epoch, renewal };
    if (released) rec.released = true;
    return `${JSON.stringify(rec).padEnd(RECORD_SIZE - 1)}\n`;
  }
  private async read(epoch: number): Promise<LeaseRecord | undefined> {
    try {
      return JSON.parse(await readFile(this.file(epoch), "utf8")) as LeaseRecord;
    } catch {
      return undefined;
    }
  }

  private async epochs(): Promise<number[]> {
    let names: string[];
    try {
      names = await readdir(this.dir);
    } catch {
      return [];
    }
    const out: number[] = [];
    for (const name of names) {
      const m = LEASE_RE.exec(name);
      if (m) out.push(Number(m[1]));
    }
    return out;
  }

  private async topEpoch(): Promise<number | undefined> {
    const all = await this.epochs();
    return all.length === 0 ? undefined : Math.max(...all);
  }

  /** Who holds the newest epoch, as recorded (for messages and tests). */
  async current(): Promise<{ epoch: number; owner: string; pid: number } | undefined> {
    const top = await this.topEpoch();
    if (top === undefined) return undefined;
    const rec = await this.read(top);
    return rec === undefined ? undefined : { epoch: top, owner: rec.owner, pid: rec.pid };
  }
}
