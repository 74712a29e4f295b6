// The bank workload: branch instances of apps/bank on real processes, transfers sent as impulses by the process
// that hosts branch-0 (paced with BANK_RATE so that the stream lasts while faults land), and the checks of the
// `BANK {...}` report: total money constant, nothing in flight, and every accepted transfer applied exactly once.
import type { summarize } from "../../../apps/bank/src/main.js";
import { APPS, Cluster } from "./cluster.js";

export interface BankConfig {
  readonly accounts: number;
  readonly branches: number;
  readonly transfers: number;
  /** Transfers per second (0: as fast as possible). */
  readonly rate: number;
  readonly seed: number;
}

export const INITIAL_BALANCE = 1000;

/** The `BANK {...}` line apps/bank prints once every accepted transfer has its credit (its own type). */
export type BankReport = ReturnType<typeof summarize>;

export function branchNames(c: BankConfig): string[] {
  return Array.from({ length: c.branches }, (_, i) => `branch-${i}`);
}

export function bankEnv(c: BankConfig): Record<string, string> {
  return {
    BANK_ACCOUNTS: String(c.accounts),
    BANK_BRANCHES: String(c.branches),
    BANK_TRANSFERS: String(c.transfers),
    BANK_RATE: String(c.rate),
    BANK_SEED: String(c.seed),
  };
}

export function bankReports(lines: readonly string[]): BankReport[] {
  return lines.filter((l) => l.startsWith("BANK {")).map((l) => JSON.parse(l.slice(5)) as BankReport);
}

/** The run ids the generator used (one per run of `main` that sent transfers). */
export function runIds(lines: readonly string[]): Set<string> {
  const ids = new Set<string>();
  for (const l of lines) {
    const m = /^\[bank\] \d+ transfers logged earlier; sending \d+ \(run (\w+)\)$/.exec(l);
    if (m !== null) ids.add(m[1]!);
  }
  return ids;
}

/** Whether the generator is sending: some run of `main` started sending and none has finished. */
export function streaming(lines: readonly string[]): boolean {
  let started = false;
  for (const l of lines) {
    if (l.startsWith("[bank] all ")) return false;
    if (l.includes(" transfers logged earlier; sending ")) started = true;
  }
  return started;
}

/**
 * The violations in a finished bank run. `reports` are the `BANK` lines (each printed when nothing was in
 * flight, so each must balance); `generatorLines` is branch-0's output, naming the run ids transfers can carry.
 */
export function checkBank(
  c: BankConfig,
  reports: readonly BankReport[],
  generatorLines: readonly string[],
): string[] {
  const v: string[] = [];
  if (reports.length === 0) v.push("the bank never reported (no BANK line)");
  const expectedTotal = c.accounts * INITIAL_BALANCE;
  const runs = runIds(generatorLines);
  let accepted = 0;
  for (const [k, b] of reports.entries()) {
    const at = `BANK report ${k + 1}`;
    if (b.total !== expectedTotal) v.push(`${at}: total ${b.total}, expected ${expectedTotal}`);
    if (b.inFlight !== 0) v.push(`${at}: ${b.inFlight} in flight`);
    if (b.duplicates !== 0) v.push(`${at}: ${b.duplicates} transfers or credits applied twice`);
    if (b.credits !== b.accepted) v.push(`${at}: ${b.accepted} accepted but ${b.credits} credited`);
    if (b.credited !== b.debited) v.push(`${at}: ${b.debited} debited but ${b.credited} credited`);
    if (b.accepted + b.rejected !== b.received)
      v.push(`${at}: ${b.accepted} accepted + ${b.rejected} rejected != ${b.received} received`);
    if (new Set(b.debitIds).size !== b.debitIds.length) v.push(`${at}: a transfer id debited twice`);
    if (new Set(b.creditIds).size !== b.creditIds.length) v.push(`${at}: a transfer id credited twice`);
    const debits = [...b.debitIds].sort();
    const credits = [...b.creditIds].sort();
    if (debits.join(",") !== credits.join(",")) {
      const d = new Set(debits);
      const cr = new Set(credits);
      v.push(
        `${at}: debits without a credit: ${debits.filter((x) => !cr.has(x)).slice(0, 5)}; credits without a debit: ${credits.filter((x) => !d.has(x)).slice(0, 5)}`,
      );
    }
    // Every applied transfer is one the generator sent: a known run id and a number below the total.
    for (const id of debits) {
      const [run, n] = id.split("-");
      if (!runs.has(run ?? "") || !(Number(n) >= 0 && Number(n) < c.transfers)) {
        v.push(`${at}: transfer ${id} was never sent by the generator`);
        break;
      }
    }
    if (b.accepted < accepted)
      v.push(`${at}: ${b.accepted} accepted, fewer than an earlier report's ${accepted}`);
    accepted = b.accepted;
  }
  return v;
}

export async function bankCluster(
  root: string,
  c: BankConfig,
  extra: { logTriggerSizeMB?: number; logDir?: string; noRestart?: boolean } = {},
): Promise<Cluster> {
  return Cluster.create({ root, entry: APPS.bank, instances: branchNames(c), env: bankEnv(c), ...extra });
}
