// A bank: accounts spread over branch instances. Transfers enter as impulses at the source branch, which
// debits (or rejects) and moves the money to the destination branch with a fork. Kill the process at any
// moment: the total is conserved and every accepted transfer is credited exactly once.
import { defineApp, defineImmortal } from "@immortal/sdk";

/** Number of accounts (`BANK_ACCOUNTS`). */
const ACCOUNTS = Number(process.env.BANK_ACCOUNTS ?? 20);
/** Number of branch instances, `branch-0` .. `branch-{M-1}` (`BANK_BRANCHES`). */
const BRANCHES = Number(process.env.BANK_BRANCHES ?? 3);
/** How many transfers the generator sends in total (`BANK_TRANSFERS`). */
const TRANSFERS = Number(process.env.BANK_TRANSFERS ?? 500);
/** Seed of the generator's PRNG (`BANK_SEED`), mixed with the clock. */
const SEED = Number(process.env.BANK_SEED ?? 1);
/** Transfers per second the generator sends at most (`BANK_RATE`; 0 or unset: as fast as it can). */
const RATE = Number(process.env.BANK_RATE ?? 0);
const INITIAL = 1000;

/** The branch that holds account `k`. */
export function branchOf(account: number): string {
  return `branch-${account % BRANCHES}`;
}

export interface BranchReport {
  branch: string;
  balances: Record<string, number>;
  received: number;
  debitIds: string[];
  creditIds: string[];
  rejectedIds: string[];
  debitedAmount: number;
  creditedAmount: number;
  duplicates: number;
}

export const Branch = defineImmortal({
  name: "Branch",
  state: () => ({
    balances: new Map<number, number>(),
    /** Transfer id -> amount, for every accepted debit. */
    debits: new Map<string, number>(),
    /** Transfer id -> amount, for every applied credit. */
    credits: new Map<string, number>(),
    rejected: new Set<string>(),
    /** Transfers received here (logged impulses), accepted or rejected. */
    received: 0,
    duplicates: 0,
    /** branch-0 only: the generator has sent everything. */
    generationDone: false,
  }),
  init(ctx) {
    const me = Number(ctx.self.slice("branch-".length));
    for (let k = 0; k < ACCOUNTS; k++) if (k % BRANCHES === me) ctx.state.balances.set(k, INITIAL);
  },
  handlers: {
    /** A transfer from an account of this branch (an impulse from the load generator). */
    transfer(ctx, id: string, from: number, to: number, amount: number) {
      const s = ctx.state;
      if (s.debits.has(id) || s.rejected.has(id)) {
        s.duplicates += 1;
        return;
      }
      s.received += 1;
      const balance = s.balances.get(from);
      if (balance === undefined || balance < amount || amount <= 0) {
        s.rejected.add(id);
        return;
      }
      s.balances.set(from, balance - amount);
      s.debits.set(id, amount);
      ctx.fork(Branch, branchOf(to)).credit(id, to, amount);
    },
    /** The second half of a transfer: the money arrives (a fork from the source branch). */
    credit(ctx, id: string, account: number, amount: number) {
      const s = ctx.state;
      if (s.credits.has(id)) {
        s.duplicates += 1;
        return;
      }
      s.credits.set(id, amount);
      s.balances.set(account, (s.balances.get(account) ?? 0) + amount);
    },
    /** branch-0: the generator sent every transfer. */
    generationFinished(ctx) {
      ctx.state.generationDone = true;
    },
    status(ctx): { received: number; generationDone: boolean } {
      return { received: ctx.state.received, generationDone: ctx.state.generationDone };
    },
    report(ctx): BranchReport {
      const s = ctx.state;
      const sum = (m: Map<string, number>) => [...m.values()].reduce((a, b) => a + b, 0);
      return {
        branch: ctx.self,
        balances: Object.fromEntries([...s.balances].map(([k, v]) => [String(k), v])),
        received: s.received,
        debitIds: [...s.debits.keys()],
        creditIds: [...s.credits.keys()],
        rejectedIds: [...s.rejected],
        debitedAmount: sum(s.debits),
        creditedAmount: sum(s.credits),
        duplicates: s.duplicates,
      };
    },
  },
});

function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), a | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const branches = Array.from({ length: BRANCHES }, (_, i) => `branch-${i}`);

/** Sums the branch reports into the line `main` prints. */
export function summarize(reports: readonly BranchReport[]) {
  let total = 0;
  for (const r of reports) for (const v of Object.values(r.balances)) total += v;
  const debited = reports.reduce((a, r) => a + r.debitedAmount, 0);
  const credited = reports.reduce((a, r) => a + r.creditedAmount, 0);
  const debitIds = reports.flatMap((r) => r.debitIds).sort();
  const creditIds = reports.flatMap((r) => r.creditIds).sort();
  return {
    total,
    inFlight: debited - credited,
    expectedTotal: ACCOUNTS * INITIAL,
    received: reports.reduce((a, r) => a + r.received, 0),
    accepted: debitIds.length,
    rejected: reports.reduce((a, r) => a + r.rejectedIds.length, 0),
    credits: creditIds.length,
    debited,
    credited,
    duplicates: reports.reduce((a, r) => a + r.duplicates, 0),
    perBranch: reports.map((r) => ({
      branch: r.branch,
      balance: Object.values(r.balances).reduce((a, b) => a + b, 0),
      received: r.received,
      debits: r.debitIds.length,
      credits: r.creditIds.length,
      rejected: r.rejectedIds.length,
      duplicates: r.duplicates,
    })),
    debitIds,
    creditIds,
  };
}

export default defineApp({
  instances: Object.fromEntries(branches.map((b) => [b, Branch])),
  async main(app) {
    if (!app.hosted.includes("branch-0")) return;
    const b0 = app.instance("branch-0", Branch);
    const status = await b0.call(Branch, "branch-0").status();
    process.stdout.write(`[bank] main started; generation ${status.generationDone ? "done" : "not done"}\n`);
    if (!status.generationDone) {
      // Transfers already logged (by an earlier run of main) are counted by the branches that received them.
      const counts = await Promise.all(branches.map((b) => b0.call(Branch, b).status()));
      const already = counts.reduce((a, c) => a + c.received, 0);
      const runId = Date.now().toString(36);
      const rnd = prng(SEED ^ Date.now());
      const remaining = Math.max(0, TRANSFERS - already);
      process.stdout.write(
        `[bank] ${already} transfers logged earlier; sending ${remaining} (run ${runId})\n`,
      );
      const startedAt = Date.now();
      for (let n = 0; n < remaining; n++) {
        const from = Math.floor(rnd() * ACCOUNTS);
        let to = Math.floor(rnd() * (ACCOUNTS - 1));
        if (to >= from) to += 1;
        const amount = 1 + Math.floor(rnd() * 400);
        b0.impulse(Branch, branchOf(from)).transfer(`${runId}-${already + n}`, from, to, amount);
        if ((n + 1) % 100 === 0) {
          process.stdout.write(`[bank] sent ${n + 1}/${remaining}\n`);
          await new Promise((r) => setTimeout(r, 10));
        }
        // Paced (BANK_RATE): a stream of transfers that lasts, so that faults land while it flows.
        const ahead = RATE > 0 ? startedAt + ((n + 1) * 1000) / RATE - Date.now() : 0;
        if (ahead > 2) await new Promise((r) => setTimeout(r, ahead));
      }
      b0.impulse(Branch, "branch-0").generationFinished();
      process.stdout.write(`[bank] all ${remaining} transfers sent (run ${runId})\n`);
    }
    for (;;) {
      const s = summarize(await Promise.all(branches.map((b) => b0.call(Branch, b).report())));
      const finished = (await b0.call(Branch, "branch-0").status()).generationDone;
      if (finished && s.inFlight === 0 && s.credits === s.accepted) {
        process.stdout.write(`BANK ${JSON.stringify(s)}\n`);
        process.stdout.write("DONE\n");
        return;
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  },
});
