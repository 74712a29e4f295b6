// Shared by the fault-scenario tests: temporary folders and clusters cleaned up after each test, the seed that
// fixes every random choice (IMMORTAL_TEST_SEED), and waits on the apps' output.
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterEach } from "vitest";
import { type BankConfig, bankCluster } from "../src/bank.js";
import type { Cluster, Proc } from "../src/cluster.js";
import { type PtiConfig, ptiCluster, serverReports } from "../src/pti.js";

/** A PTI run long enough to be killed after rounds 2 and 5: 8 rounds, 16,320 messages of 8 KiB down to 64 B. */
export const LONG_RUN: PtiConfig = { rounds: 8, bytesPerRound: 512 * 1024, maxSize: 8192, stepBytes: 16384 };

export const SEED = Number(process.env.IMMORTAL_TEST_SEED ?? Date.now() % 100_000);

const clusters: Cluster[] = [];
const dirs: string[] = [];
const cleanups: Array<() => void | Promise<void>> = [];

afterEach(async () => {
  for (const c of clusters.splice(0)) await c.stopAll();
  for (const f of cleanups.splice(0).reverse()) await f();
  // IMMORTAL_TEST_KEEP=1 keeps the folders (registry, logs, every process's output in out/) for a post-mortem.
  for (const d of dirs.splice(0))
    if (process.env.IMMORTAL_TEST_KEEP !== "1") rmSync(d, { recursive: true, force: true });
});

/** Runs `f` after the test, after its clusters are stopped and before its folders are removed. */
export function onCleanup(f: () => void | Promise<void>): void {
  cleanups.push(f);
}

/** A fresh folder, removed after the test. */
export function tmpDir(prefix: string): string {
  const d = mkdtempSync(path.join(os.tmpdir(), `chaos-${prefix}-`));
  dirs.push(d);
  return d;
}

type Extra = Parameters<typeof ptiCluster>[2];

/** A PTI cluster (server + clients, a coordinator and a binding process each), stopped after the test. */
export async function pti(cfg: PtiConfig, extra: Extra = {}, root = tmpDir("pti")): Promise<Cluster> {
  const c = await ptiCluster(root, cfg, extra);
  clusters.push(c);
  return c;
}

export async function bank(cfg: BankConfig, extra: Extra = {}): Promise<Cluster> {
  const c = await bankCluster(tmpDir("bank"), cfg, extra);
  clusters.push(c);
  return c;
}

/** Distinct round numbers the server printed live (over all its runs). */
export function roundsPrinted(c: Cluster): number {
  const seen = new Set<string>();
  for (const l of c.get("server").binding.lines) {
    const m = /^\[server\] Round (\d+): /.exec(l);
    if (m !== null) seen.add(m[1]!);
  }
  return seen.size;
}

/** Waits until the server printed `n` distinct round lines; fails if the run finished first (too short). */
export async function afterRounds(c: Cluster, n: number, ms = 60_000): Promise<void> {
  const server = c.get("server").binding;
  await server.waitFor(() => roundsPrinted(c) >= n || serverReports(c).length > 0, `round ${n}`, ms);
  if (serverReports(c).length > 0) throw new Error(`the run finished before the fault: make it longer`);
}

/** Waits for the server's `PTI {...}` report (the run is done). */
export async function ptiDone(c: Cluster, ms = 90_000): Promise<void> {
  await c.get("server").binding.waitFor(() => serverReports(c).length > 0, "the PTI report", ms);
}

/**
 * SIGKILLs every process in `procs` (each must be running: the fault is real) and waits until supervision has
 * started each again, so the next fault hits a new run and not the same dying one.
 */
export async function killAndAwaitRestart(...procs: Proc[]): Promise<void> {
  const before = procs.map((p) => p.starts);
  const killed = procs.map((p) => p.kill());
  if (killed.includes(false))
    throw new Error(
      `not running when the fault was due: ${procs.filter((_, i) => !killed[i]).map((p) => p.label)}`,
    );
  await Promise.all(procs.map((p, i) => p.waitRestarted(before[i]!)));
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
