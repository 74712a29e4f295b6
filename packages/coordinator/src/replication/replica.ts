import type { InstanceStorage } from "../storage/index.js";

/**
 * What an active/active coordinator gives each binding session (`InstanceCore`): the lease, and the writes
 * only a primary that takes over makes. A single-replica instance has none of this.
 */
export interface ReplicaHooks {
  /** True once this replica holds the lease on the log (it tries to take it if it is free or expired). */
  tryPromote(): Promise<boolean>;
  /** How often a standby looks for new log bytes and tries the lease. */
  pollMs: number;
  /** Seals log `n` at `length` (see fencing.ts): nothing after it is ever read. */
  seal(n: number, length: number): Promise<void>;
  /** A new incarnation for the impulses this replica sends as primary (newer than any earlier primary's). */
  newEpoch(): Promise<number>;
}

/**
 * Decides a new session's role: primary as soon as the lease is ours; standby once there is a checkpoint to
 * replay from (the primary's first start made one) while another replica holds the lease. Before either,
 * waits: a standby cannot start from nothing.
 */
export async function awaitRole(
  hooks: ReplicaHooks,
  storage: InstanceStorage,
  stopped: () => boolean,
): Promise<{ checkpoints: number[]; standby: boolean }> {
  for (;;) {
    if (stopped()) throw new Error("the session stopped");
    if (await hooks.tryPromote()) return { checkpoints: await storage.listCheckpoints(), standby: false };
    const checkpoints = await storage.listCheckpoints();
    if (checkpoints.length > 0) return { checkpoints, standby: true };
    await new Promise((r) => setTimeout(r, hooks.pollMs));
  }
}
