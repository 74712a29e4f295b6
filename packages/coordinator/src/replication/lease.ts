import { randomUUID } from "node:crypto";
import { existsSync } from "node:fs";
import { link, mkdir, readdir, readFile, rename, unlink, writeFile } from "node:fs/promises";
import path from "node:path";

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
 * `LogLease` on a local (or shared) file system, in the instance's log folder.
 *
 * - Epoch E is the file `lease.E`. Taking epoch E+1 is `link(tmp, "lease.E+1")`, which fails with EEXIST for
 *   all but one of any number of racing replicas: exactly one primary per epoch, by the file system's
 *   atomic create.
 * - The holder renews by replacing `lease.E` (write + rename) with a bumped `renewal` counter. A waiting
 *   replica decides expiry with *its own monotonic clock*: the lease is dead once the file's (epoch, renewal)
 *   has not changed for `ttlMs` since this replica first saw that value. No wall clock and no clock
 *   synchronisation are involved (AMBROSIA's blob lease breaker uses the same "unchanged since my last look"
 *   rule with ETags).
 * - The holder counts its lease valid until `ttlMs − marginMs` after the *start* of its last successful
 *   renewal (monotonic clock). Its renewal becomes visible after that start, and a waiter starts its `ttlMs`
 *   after seeing it, so the holder stops at least `marginMs` before anyone can take over.
 * - `assertHeld` also looks for `lease.E+1`: a replica that took a newer epoch fences this one at once.
 */
export class FileLogLease implements LogLease {
  private heldEpoch: number | undefined;
  private renewal = 0;
  private validUntil = 0;
  private lostError: LeaseLostError | undefined;
  private readonly listeners: Array<(err: LeaseLostError) => void> = [];
  private timer: NodeJS.Timeout | undefined;
  private renewing = false;
  /** The (epoch, renewal) this replica last saw, and when (monotonic ms). */
  private seen: { key: string; at: number } | undefined;

  constructor(
    readonly dir: string,
    readonly owner: string,
    readonly timing: LeaseTiming = leaseTiming(),
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
    const top = await this.topEpoch();
    if (top !== undefined) {
      const rec = await this.read(top);
      // An unreadable record (being replaced right now) counts as a renewal in progress.
      const key = rec === undefined ? `${top}:?` : `${top}:${rec.renewal}`;
      const now = performance.now();
      if (rec?.released !== true) {
        if (this.seen?.key !== key) {
          this.seen = { key, at: now };
          return undefined;
        }
        if (now - this.seen.at < this.timing.ttlMs) return undefined;
      }
    }
    const epoch = (top ?? 0) + 1;
    const started = performance.now();
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
    this.renewal = 0;
    this.validUntil = started + this.timing.ttlMs - this.timing.marginMs;
    this.timer = setInterval(() => void this.renew(), this.timing.renewMs);
    this.timer.unref();
    // Older epochs are history; keep the previous one so a deposed holder still finds its own file.
    for (const n of await this.epochs()) {
      if (n < epoch - 1) await unlink(this.file(n)).catch(() => undefined);
    }
    return epoch;
  }

  assertHeld(what: string): void {
    if (this.lostError !== undefined) throw this.lostError;
    if (this.heldEpoch === undefined) {
      throw new LeaseLostError(`${what}: this replica does not hold the lease on the log`);
    }
    if (performance.now() > this.validUntil) {
      throw this.lose(
        `${what}: the lease on the log (epoch ${this.heldEpoch}) was not renewed in time; ` +
          "another replica may have taken over",
      );
    }
    if (existsSync(this.file(this.heldEpoch + 1))) {
      throw this.lose(`${what}: another replica took the lease on the log (epoch ${this.heldEpoch + 1})`);
    }
  }

  private async renew(): Promise<void> {
    if (this.renewing || !this.held) return;
    this.renewing = true;
    const epoch = this.heldEpoch!;
    try {
      this.assertHeld("renewing the lease");
      const started = performance.now();
      const next = this.renewal + 1;
      const tmp = `${this.file(epoch)}.${process.pid}.tmp`;
      await writeFile(tmp, this.encode(epoch, next));
      // Checked again right before the rename: a holder that was stalled must not extend a lost lease (a
      // rename after all is harmless: the newer epoch's file wins, and this one never writes again).
      this.assertHeld("renewing the lease");
      await rename(tmp, this.file(epoch));
      this.renewal = next;
      this.validUntil = started + this.timing.ttlMs - this.timing.marginMs;
    } catch (err) {
      if (!(err instanceof LeaseLostError)) this.lose(`renewing the lease failed: ${String(err)}`);
    } finally {
      this.renewing = false;
    }
  }

  private lose(reason: string): LeaseLostError {
    if (this.lostError !== undefined) return this.lostError;
    const err = new LeaseLostError(reason);
    this.lostError = err;
    if (this.timer !== undefined) clearInterval(this.timer);
    for (const l of this.listeners) l(err);
    return err;
  }

  async release(): Promise<void> {
    if (this.timer !== undefined) clearInterval(this.timer);
    if (!this.held) return;
    const epoch = this.heldEpoch!;
    this.lostError = new LeaseLostError("the lease was released");
    const tmp = `${this.file(epoch)}.${process.pid}.tmp`;
    try {
      if (existsSync(this.file(epoch + 1))) return;
      await writeFile(tmp, this.encode(epoch, this.renewal + 1, true));
      await rename(tmp, this.file(epoch));
    } catch {
      // A lease that could not be marked released simply expires.
    }
  }

  private encode(epoch: number, renewal: number, released = false): string {
    const rec: LeaseRecord = { owner: this.owner, pid: process.pid, epoch, renewal };
    if (released) rec.released = true;
    return `${JSON.stringify(rec)}\n`;
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
