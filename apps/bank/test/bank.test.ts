// apps/bank under `immortal dev`: a clean run, and a run whose process is SIGKILLed three times at random moments
// (restarted on the same data dir). Pass: the total is conserved, no transfer is applied twice, and every accepted
// debit has exactly one credit.
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { afterEach, describe, expect, it } from "vitest";
import { prng, stopAll, supervise, until } from "../../../tools/testkit/src/processes.js";

const here = path.dirname(fileURLToPath(import.meta.url));
const IMMORTAL = path.join(here, "../../../packages/cli/bin/immortal.mjs");
const ENTRY = path.join(here, "../dist/main.js");
const TRANSFERS = 500;
const SEED = Number(process.env.IMMORTAL_TEST_SEED ?? Date.now() % 100_000);

const cleanup: Array<() => void> = [];
afterEach(() => {
  stopAll();
  for (const c of cleanup.splice(0)) c();
});

interface Bank {
  total: number;
  expectedTotal: number;
  inFlight: number;
  received: number;
  accepted: number;
  rejected: number;
  credits: number;
  debited: number;
  credited: number;
  duplicates: number;
  debitIds: string[];
  creditIds: string[];
}

const done = (lines: string[]) => lines.includes("DONE");

function check(lines: string[]): Bank {
  const reports = lines.filter((l) => l.startsWith("BANK {")).map((l) => JSON.parse(l.slice(5)) as Bank);
  expect(reports.length).toBeGreaterThan(0);
  const b = reports.at(-1)!;
  expect(b.total).toBe(b.expectedTotal);
  expect(b.inFlight).toBe(0);
  expect(b.duplicates).toBe(0);
  expect(b.credits).toBe(b.accepted);
  expect(b.credited).toBe(b.debited);
  expect(b.accepted + b.rejected).toBe(b.received);
  // Exactly once on both sides: no id repeated, and the credited ids are exactly the accepted debits.
  expect(new Set(b.debitIds).size).toBe(b.debitIds.length);
  expect(new Set(b.creditIds).size).toBe(b.creditIds.length);
  expect(b.creditIds).toEqual(b.debitIds);
  expect(b.received).toBeLessThanOrEqual(TRANSFERS);
  return b;
}

function dataDir(prefix: string): string {
  const data = mkdtempSync(path.join(os.tmpdir(), prefix));
  cleanup.push(() => rmSync(data, { recursive: true, force: true }));
  return data;
}

const env = { ...process.env, BANK_TRANSFERS: String(TRANSFERS), BANK_SEED: String(SEED) };

describe(`apps/bank (seed ${SEED})`, () => {
  it("immortal dev runs every transfer to DONE with the total conserved", async () => {
    const lines: string[] = [];
    supervise([IMMORTAL, "dev", ENTRY, "--data", dataDir("bank-dev-")], env, lines);
    await until(() => done(lines), "DONE", 60_000);
    const b = check(lines);
    expect(b.received).toBe(TRANSFERS);
  }, 90_000);

  it("immortal dev, SIGKILLed three times at random moments, conserves money and applies each transfer once", async () => {
    const lines: string[] = [];
    const dev = supervise([IMMORTAL, "dev", ENTRY, "--data", dataDir("bank-kill-")], env, lines);
    const rnd = prng(SEED);
    for (let k = 0; k < 3; k++) {
      const n = dev.starts();
      await until(
        () => lines.filter((l) => l.startsWith("[bank] main started")).length >= n,
        `run ${n} of main`,
        30_000,
      );
      await new Promise((r) => setTimeout(r, rnd() * 400));
      dev.kill();
      await until(() => dev.starts() > n, `restart ${n}`, 10_000);
    }
    const after = lines.length; // the DONE that counts comes from the run after the last kill
    await until(() => done(lines.slice(after)), "DONE", 60_000);
    check(lines.slice(after));
  }, 120_000);
});
