import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import path from "node:path";
import { FileInstanceStorage, type FsOps, nodeFsOps } from "../storage/index.js";
import { fencedFsOps, writeSeal } from "./fencing.js";
import { FileLogLease, type LeaseLostError, type LeaseTiming, leaseTiming } from "./lease.js";
import type { ReplicaHooks } from "./replica.js";

export interface ActiveActiveOptions {
  /** The instance version's log folder, shared by all replicas (the lease lives there too). */
  instanceDir: string;
  /** Who this replica is, for the lease record and messages. */
  owner: string;
  timing?: LeaseTiming;
  /** A fresh, durably recorded incarnation (the coordinator's registry counter). */
  newEpoch: () => Promise<number>;
  /** The lease was lost: the coordinator must stop at once (it prints FATAL ERROR and exits). */
  onLost: (err: LeaseLostError) => void;
}

/**
 * One active/active replica's share of the coordinator: the lease on the shared log, storage whose every
 * write is fenced by it, and the hooks its binding sessions use to stand by and take over.
 */
export class ActiveActive {
  readonly lease: FileLogLease;
  readonly storage: FileInstanceStorage;
  readonly hooks: ReplicaHooks;
  /** The file-system calls with every mutation fenced by the lease (the storage's; the digests use them too). */
  readonly fsOps: FsOps;

  constructor(o: ActiveActiveOptions) {
    const timing = o.timing ?? leaseTiming();
    this.lease = new FileLogLease(leaseDirectory(o.instanceDir), o.owner, timing);
    this.lease.onLost(o.onLost);
    const ops = fencedFsOps(nodeFsOps, (what) => this.lease.assertHeld(what));
    this.fsOps = ops;
    this.storage = new FileInstanceStorage(o.instanceDir, { fsOps: ops });
    this.hooks = {
      tryPromote: async () => (await this.lease.tryAcquire()) !== undefined,
      // Polls cost a few stats each; polling often keeps takeover close to the moment the lease runs out.
      pollMs: Math.max(5, Math.min(20, Math.floor(timing.ttlMs / 15))),
      seal: (n, length) => writeSeal(ops, o.instanceDir, n, length),
      newEpoch: o.newEpoch,
    };
  }

  get epoch(): number | undefined {
    return this.lease.epoch;
  }

  release(): Promise<void> {
    return this.lease.release();
  }
}

/**
 * Where the lease files of an instance's log live. Renewals are frequent small writes; on the log's own disk
 * they queue behind the log's fdatasyncs in the file system's journal (hundreds of milliseconds on a busy
 * disk, enough to lose a 300 ms lease). So by default, replicas on one machine keep the lease in memory-backed
 * `/dev/shm`, one folder per log folder. `IMMORTAL_LEASE_DIR` moves it (a shared file system for replicas on
 * several machines sharing the log folder). The log's seals stay with the log, on disk.
 */
export function leaseDirectory(instanceDir: string): string {
  const abs = path.resolve(instanceDir);
  const key = `${path.basename(abs)}-${createHash("sha256").update(abs).digest("hex").slice(0, 16)}`;
  const base = process.env.IMMORTAL_LEASE_DIR;
  if (base !== undefined && base !== "") return path.join(base, key);
  if (existsSync("/dev/shm")) return path.join("/dev/shm", "immortal-leases", key);
  return instanceDir;
}
