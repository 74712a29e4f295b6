// The chaos loop: cycles of a workload (PTI, bank, or both at once) on real coordinator and binding processes,
// SIGKILLing one of them at seeded random moments and restarting it after a seeded random pause, until the
// workload finishes; then a clean restart of the reporting binding and the invariants checked. The schedule —
// every gap, every choice of process, every pause — is drawn from one mulberry32 stream seeded with `seed`.
import { rmSync } from "node:fs";
import path from "node:path";
import { prng } from "../../testkit/src/processes.js";
import { type BankConfig, bankCluster, bankReports, checkBank, streaming } from "./bank.js";
import type { Cluster, Proc } from "./cluster.js";
import { checkPti, type PtiConfig, ptiCluster, serverReports } from "./pti.js";

export type AppName = "pti" | "bank";

export interface ChaosOptions {
  readonly apps: readonly AppName[];
  readonly seed: number;
  /** Stop killing after this long (ms); the current cycle then finishes and is checked. */
  readonly durationMs: number;
  /** Stop killing after this many kills. */
  readonly maxKills?: number;
  /** Gap between kills, drawn uniformly from [minGapMs, maxGapMs]. */
  readonly minGapMs: number;
  readonly maxGapMs: number;
  /** A killed process is restarted after a pause drawn from [50, 50 + maxDownMs]. */
  readonly maxDownMs: number;
  /** Folder for every cycle's registry, logs and process output. */
  readonly root: string;
  /** Keep the folders of cycles that passed (the failing one is always kept). */
  readonly keep: boolean;
  readonly pti: PtiConfig;
  readonly bank: Omit<BankConfig, "seed">;
  /** Log trigger size (MB) the instances are registered with: checkpoints every that many MB of log. */
  readonly logTriggerSizeMB: number;
  /** How long a cycle may take to finish after the last kill. */
  readonly finishTimeoutMs: number;
  /** Print every kill (the schedule). */
  readonly printKills: boolean;
}

export interface ChaosResult {
  readonly violations: string[];
  readonly cycles: number;
  readonly kills: number;
  readonly killsByKind: Record<string, number>;
  readonly killsByApp: Record<string, number>;
  /** Bank kills that landed while the generator was sending transfers. */
  readonly killsDuringTransfers: number;
  /** Draws that found their process already down (restarting) or its workload finished. */
  readonly skipped: number;
  readonly ptiMessages: number;
  readonly ptiBytes: number;
  readonly bankTransfers: number;
  /** Transfers the generator was asked to send, over the checked bank cycles. */
  readonly bankRequested: number;
  readonly bankAccepted: number;
  readonly durationMs: number;
  /** The folder of the failing cycle, when there was a violation. */
  readonly failedDir?: string;
}

interface Workload {
  readonly app: AppName;
  readonly cluster: Cluster;
  finished(): boolean;
  /** Bank: the generator is sending; PTI: always (its stream is the whole run). */
  streaming(): boolean;
  /** Restarts the reporting binding cleanly, waits for its report, and checks every report of the cycle. */
  verify(
    timeoutMs: number,
  ): Promise<{ violations: string[]; messages: number; bytes: number; accepted: number }>;
}

async function restartAndWait(p: Proc, done: (lines: string[]) => boolean, what: string, ms: number) {
  await p.stop();
  p.start();
  await p.waitFor(() => done(p.currentRunLines()), what, ms);
}

async function ptiWorkload(dir: string, o: ChaosOptions): Promise<Workload> {
  const cluster = await ptiCluster(dir, o.pti, { logTriggerSizeMB: o.logTriggerSizeMB });
  const server = cluster.get("server").binding;
  return {
    app: "pti",
    cluster,
    finished: () => serverReports(cluster).length > 0,
    streaming: () => true,
    async verify(ms) {
      // One more recovery, after the dust settled: the recovered state must report the same exact figures.
      await restartAndWait(server, (l) => l.some((x) => x.startsWith("PTI {")), "the PTI report", ms);
      const reports = serverReports(cluster);
      const last = reports.at(-1);
      return {
        violations: checkPti(o.pti, reports, server.lines),
        messages: last?.messages ?? 0,
        bytes: last?.bytes ?? 0,
        accepted: 0,
      };
    },
  };
}

async function bankWorkload(dir: string, o: ChaosOptions, seed: number): Promise<Workload> {
  const cfg: BankConfig = { ...o.bank, seed };
  const cluster = await bankCluster(dir, cfg, { logTriggerSizeMB: o.logTriggerSizeMB });
  const gen = cluster.get("branch-0").binding;
  return {
    app: "bank",
    cluster,
    finished: () => gen.lines.includes("DONE"),
    streaming: () => streaming(gen.lines),
    async verify(ms) {
      await restartAndWait(gen, (l) => l.includes("DONE"), "the BANK report", ms);
      const reports = bankReports(gen.lines);
      const last = reports.at(-1);
      return {
        violations: checkBank(cfg, reports, gen.lines),
        messages: last?.received ?? 0,
        bytes: 0,
        accepted: last?.accepted ?? 0,
      };
    },
  };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The last lines of every process's output file, for a report. */
function tails(cluster: Cluster, n = 8): string {
  return cluster
    .procs()
    .map(
      (p) =>
        `--- ${p.label} (${p.starts} starts)\n${p
          .log()
          .split("\n")
          .filter((l) => l !== "")
          .slice(-n)
          .join("\n")}`,
    )
    .join("\n");
}

/**
 * Runs the chaos loop. Each app runs in its own lane, cycle after cycle (a fresh registry and logs each time);
 * one killer draws (gap, process slot, pause) from the seeded stream and kills the slot's process in the lane's
 * current cycle. A slot whose lane is between cycles, or whose process is already down, is a skipped draw.
 * `out` gets the schedule and progress lines.
 */
export async function runChaos(o: ChaosOptions, out: (line: string) => void): Promise<ChaosResult> {
  const rnd = prng(o.seed);
  const started = Date.now();
  const elapsed = () => ((Date.now() - started) / 1000).toFixed(2);
  const killsByKind: Record<string, number> = { coordinator: 0, binding: 0 };
  const killsByApp: Record<string, number> = {};
  let kills = 0;
  let skipped = 0;
  let killsDuringTransfers = 0;
  let cycles = 0;
  let ptiMessages = 0;
  let ptiBytes = 0;
  let bankTransfers = 0;
  let bankAccepted = 0;
  let bankRequested = 0;
  const violations: string[] = [];
  let failedDir: string | undefined;
  let killsStoppedAt: number | undefined;
  const killing = () =>
    violations.length === 0 &&
    Date.now() - started < o.durationMs &&
    (o.maxKills === undefined || kills < o.maxKills);

  interface Lane {
    app: AppName;
    cycle: number;
    /** The cycle whose processes may be killed now (undefined between cycles and while checking). */
    running: Workload | undefined;
  }
  const lanes: Lane[] = o.apps.map((app) => ({ app, cycle: 0, running: undefined }));
  const slotsPerLane = (app: AppName) => (app === "pti" ? 1 + (o.pti.clients ?? 1) : o.bank.branches) * 2;
  // A fixed list of slots, so a draw names the same process whatever the timing: [lane, index in procs()].
  const slots = lanes.flatMap((lane) =>
    Array.from({ length: slotsPerLane(lane.app) }, (_, i) => ({ lane, i })),
  );

  async function runLane(lane: Lane): Promise<void> {
    while (killing()) {
      lane.cycle++;
      cycles++;
      const dir = path.join(o.root, `${lane.app}-cycle-${lane.cycle}`);
      const w =
        lane.app === "pti"
          ? await ptiWorkload(dir, o)
          : await bankWorkload(dir, o, (o.seed + lane.cycle) >>> 0);
      out(`[chaos] ${lane.app} cycle ${lane.cycle} in ${dir}`);
      w.cluster.startAll();
      const cycleStart = Date.now();
      lane.running = w;
      try {
        while (!w.finished()) {
          const quiet = killsStoppedAt === undefined ? 0 : Date.now() - killsStoppedAt;
          if (quiet > o.finishTimeoutMs || Date.now() - cycleStart > 4 * o.finishTimeoutMs) {
            throw new Error(
              `did not finish (${quiet > o.finishTimeoutMs ? `${o.finishTimeoutMs} ms after the kills stopped` : `in ${4 * o.finishTimeoutMs} ms`})\n${tails(w.cluster)}`,
            );
          }
          await sleep(50);
        }
        lane.running = undefined;
        for (const p of w.cluster.procs()) p.setRestart(50);
        const r = await w.verify(o.finishTimeoutMs);
        for (const v of r.violations) violations.push(`${lane.app} cycle ${lane.cycle}: ${v}`);
        if (lane.app === "pti") {
          ptiMessages += r.messages;
          ptiBytes += r.bytes;
        } else {
          bankTransfers += r.messages;
          bankAccepted += r.accepted;
          bankRequested += o.bank.transfers;
        }
        out(
          `[chaos] ${lane.app} cycle ${lane.cycle}: ${r.violations.length === 0 ? "ok" : "VIOLATION"}, ${lane.app === "pti" ? `${r.messages} messages, ${r.bytes} bytes` : `${r.messages} transfers, ${r.accepted} accepted`} checked; ${kills} kills so far at ${elapsed()} s`,
        );
        if (r.violations.length > 0) failedDir = dir;
      } catch (err) {
        violations.push(`${lane.app} cycle ${lane.cycle}: ${(err as Error).message}`);
        failedDir = dir;
      } finally {
        lane.running = undefined;
        await w.cluster.stopAll();
      }
      if (failedDir !== dir && !o.keep) rmSync(dir, { recursive: true, force: true });
    }
  }

  async function killer(): Promise<void> {
    while (killing()) {
      const gap = o.minGapMs + rnd() * (o.maxGapMs - o.minGapMs);
      const slot = slots[Math.floor(rnd() * slots.length)]!;
      const down = 50 + Math.floor(rnd() * o.maxDownMs);
      await sleep(gap);
      const w = slot.lane.running;
      const p = w?.cluster.procs()[slot.i];
      if (w === undefined || p === undefined || w.finished() || !killing()) {
        skipped++;
        continue;
      }
      const during = w.app === "bank" && w.streaming();
      p.setRestart(down);
      const pid = p.pid;
      if (!p.kill()) {
        skipped++;
        continue;
      }
      kills++;
      killsByKind[p.kind] = (killsByKind[p.kind] ?? 0) + 1;
      killsByApp[w.app] = (killsByApp[w.app] ?? 0) + 1;
      if (during) killsDuringTransfers++;
      if (o.printKills)
        out(
          `[chaos] kill ${kills} at ${elapsed()} s: ${w.app} ${p.label} (pid ${pid}), restart in ${down} ms${during ? ", during the transfer stream" : ""}`,
        );
    }
    killsStoppedAt = Date.now();
    for (const lane of lanes) for (const p of lane.running?.cluster.procs() ?? []) p.setRestart(50);
  }

  await Promise.all([killer(), ...lanes.map(runLane)]);
  return {
    violations,
    cycles,
    kills,
    killsByKind,
    killsByApp,
    killsDuringTransfers,
    skipped,
    ptiMessages,
    ptiBytes,
    bankTransfers,
    bankRequested,
    bankAccepted,
    durationMs: Date.now() - started,
    ...(failedDir === undefined ? {} : { failedDir }),
  };
}
