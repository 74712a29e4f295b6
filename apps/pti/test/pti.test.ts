// apps/pti end to end under `immortal dev`: exact byte counts, no duplicates or gaps, also when the whole process
// is SIGKILLed at random moments and restarted on the same --data dir; echo mode; fixed-size message counts.
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { afterEach, describe, expect, it } from "vitest";
import { prng, stopAll, supervise, until } from "../../../tools/testkit/src/processes.js";

const here = path.dirname(fileURLToPath(import.meta.url));
const IMMORTAL = path.join(here, "../../../packages/cli/bin/immortal.mjs");
const ENTRY = path.join(here, "../dist/main.js");
const SEED = Number(process.env.IMMORTAL_TEST_SEED ?? Date.now() % 100_000);
const MIB = 1024 * 1024;

const cleanup: Array<() => void> = [];
afterEach(() => {
  stopAll();
  for (const c of cleanup.splice(0)) c();
});

/** `immortal dev` on a fresh data dir, restarted when it exits, its stdout lines collected. */
function dev(env: Record<string, string>, lines: string[]): { kill(): boolean } {
  const data = mkdtempSync(path.join(os.tmpdir(), "pti-dev-"));
  cleanup.push(() => rmSync(data, { recursive: true, force: true }));
  return supervise([IMMORTAL, "dev", ENTRY, "--data", data], { ...process.env, ...env }, lines);
}

const DONE = "[server] DONE {";
const hasDone = (lines: string[]) => () => lines.some((l) => l.startsWith(DONE));

function done(lines: string[]): { bytes: number; messages: number; duplicates: number; gaps: number } {
  const all = lines.filter((l) => l.startsWith(DONE)).map((l) => JSON.parse(l.slice(l.indexOf("{"))));
  expect(all.length).toBe(1);
  return all[0];
}

describe(`apps/pti (seed ${SEED})`, () => {
  it("runs to completion: exact bytes, no duplicates, no gaps, a line per round", async () => {
    const rounds = 2;
    const perRound = MIB;
    const lines: string[] = [];
    dev({ PTI_ROUNDS: `${rounds}`, PTI_BYTES_PER_ROUND: `${perRound}`, PTI_MAX_SIZE: "4096" }, lines);
    await until(hasDone(lines), "DONE", 30_000);
    const d = done(lines);
    expect(d).toMatchObject({ bytes: rounds * perRound, messages: 256 + 512, duplicates: 0, gaps: 0 });
    expect(lines).toContain(`[server] Bytes received: ${rounds * perRound}`);
    for (let r = 0; r < rounds; r++) {
      expect(lines.some((l) => l.startsWith(`[server] Round ${r}: size ${4096 >> r} B, `))).toBe(true);
    }
  }, 40_000);

  it("killed with SIGKILL twice at random moments, still exact", async () => {
    const rounds = 6;
    const perRound = 2 * MIB;
    const lines: string[] = [];
    const p = dev(
      {
        PTI_ROUNDS: `${rounds}`,
        PTI_BYTES_PER_ROUND: `${perRound}`,
        PTI_MAX_SIZE: "1024",
        PTI_STEP_BYTES: "16384",
        PTI_STATE_PADDING_MB: "1",
      },
      lines,
    );
    const rnd = prng(SEED);
    await until(() => lines.some((l) => l.includes("running")), "start", 20_000);
    for (let k = 0; k < 2; k++) {
      await new Promise((r) => setTimeout(r, 150 + rnd() * 500));
      expect(hasDone(lines)(), "finished before the kill: make the run longer").toBe(false);
      p.kill();
      await until(() => lines.filter((l) => l.includes("running")).length > k + 1, "restart", 20_000);
    }
    await until(hasDone(lines), "DONE", 40_000);
    expect(done(lines)).toMatchObject({ bytes: rounds * perRound, duplicates: 0, gaps: 0 });
  }, 60_000);

  it("echo: the client gets every message back, in order", async () => {
    const lines: string[] = [];
    dev({ PTI_ROUNDS: "2", PTI_BYTES_PER_ROUND: `${MIB / 4}`, PTI_MAX_SIZE: "2048", PTI_ECHO: "1" }, lines);
    const echoDone = () => lines.some((l) => l.startsWith("[client] ECHO DONE {"));
    await until(() => echoDone() && hasDone(lines)(), "ECHO DONE", 30_000);
    const line = lines.find((l) => l.startsWith("[client] ECHO DONE {"))!;
    const sent = 128 + 256;
    expect(JSON.parse(line.slice(line.indexOf("{")))).toEqual({
      sent,
      echoes: sent,
      lastEcho: sent,
      outOfOrder: 0,
    });
    expect(done(lines)).toMatchObject({ messages: sent, duplicates: 0, gaps: 0 });
  }, 40_000);

  it("fixed size: exactly floor(bytes / size) messages every round", async () => {
    const rounds = 3;
    const perRound = 100_000;
    const size = 1000;
    const lines: string[] = [];
    dev({ PTI_ROUNDS: `${rounds}`, PTI_BYTES_PER_ROUND: `${perRound}`, PTI_FIXED_SIZE: `${size}` }, lines);
    await until(hasDone(lines), "DONE", 30_000);
    const n = Math.floor(perRound / size);
    for (let r = 0; r < rounds; r++) {
      expect(lines.some((l) => l.startsWith(`[server] Round ${r}: size ${size} B, ${n} messages, `))).toBe(
        true,
      );
    }
    expect(done(lines)).toMatchObject({
      bytes: rounds * n * size,
      messages: rounds * n,
      duplicates: 0,
      gaps: 0,
    });
  }, 40_000);
});
