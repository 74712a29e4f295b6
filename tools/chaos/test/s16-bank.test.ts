// Fault scenario 16: the bank. 30 accounts on 3 branch instances (each a coordinator and a binding process),
// 1,000 random transfers sent as impulses by the process hosting branch-0, paced at 100 a second so that the stream
// lasts; while it flows, a process picked by the seed (any coordinator or binding) is SIGKILLed after each of the
// generator's progress lines, and restarted. Pass: the total balance is unchanged, nothing is in flight, every
// accepted (logged and debited) transfer is credited exactly once, no transfer is applied twice, and every applied
// transfer is one the generator sent — in every report, including one from a last clean recovery.
import { describe, expect, it } from "vitest";
import { prng } from "../../testkit/src/processes.js";
import { type BankConfig, bankReports, checkBank, streaming } from "../src/bank.js";
import { bank, SEED, sleep } from "./support.js";

const KILLS = 6;

describe(`scenario 16: bank under kills during the transfer stream (seed ${SEED})`, {
  timeout: 180_000,
}, () => {
  it("total unchanged, every accepted transfer applied exactly once", async () => {
    const cfg: BankConfig = { accounts: 30, branches: 3, transfers: 1000, rate: 100, seed: SEED };
    const c = await bank(cfg);
    const gen = c.get("branch-0").binding;
    const procs = c.procs();
    const rnd = prng(SEED + 16);
    const progress = () => gen.lines.filter((l) => l.startsWith("[bank] sent ")).length;
    c.startAll();
    let during = 0;
    for (let k = 0; k < KILLS; k++) {
      const seen = progress();
      await gen.waitFor(
        () => progress() > seen || gen.lines.includes("DONE"),
        "the generator's progress",
        60_000,
      );
      await sleep(rnd() * 300);
      if (!streaming(gen.lines)) break;
      const victim = procs[Math.floor(rnd() * procs.length)]!;
      if (victim.kill()) during++;
    }
    expect(during, "kills that landed while transfers were being sent").toBeGreaterThanOrEqual(3);
    await gen.waitFor(() => gen.lines.includes("DONE"), "DONE", 120_000);
    // A last clean recovery of the generator's branch: its report must balance as well.
    await gen.stop();
    gen.start();
    await gen.waitFor(() => gen.currentRunLines().includes("DONE"), "DONE after recovery", 60_000);
    const reports = bankReports(gen.lines);
    expect(checkBank(cfg, reports, gen.lines)).toEqual([]);
    const last = reports.at(-1)!;
    expect(last.total).toBe(30 * 1000);
    expect(last.accepted).toBeGreaterThan(0);
    console.log(
      `[scenario 16] ${during} kills during the stream; ${last.received} transfers logged, ${last.accepted} accepted, ${last.rejected} rejected, ${c.procs().reduce((a, p) => a + p.starts, 0)} process starts`,
    );
  });
});
