// apps/hello under SIGKILL, two ways: the whole `immortal dev` process killed at random moments, and every part
// (two coordinators, two instances) as its own supervised process killed at random. Pass: the greeter finishes
// with every visitor number exactly once, and no greeting is ever printed twice (handlers run live once; a
// replay is silent).
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { afterEach, describe, expect, it } from "vitest";
import { prng, stopAll, supervise, until } from "../../../tools/testkit/src/processes.js";

const here = path.dirname(fileURLToPath(import.meta.url));
const IMMORTAL = path.join(here, "../../../packages/cli/bin/immortal.mjs");
const ENTRY = path.join(here, "../dist/main.js");
const VISITORS = 300;
const SEED = Number(process.env.IMMORTAL_TEST_SEED ?? Date.now() % 100_000);

const cleanup: Array<() => void> = [];
afterEach(() => {
  stopAll();
  for (const c of cleanup.splice(0)) c();
});

function check(lines: string[]): void {
  const done = lines.filter((l) => l.includes("DONE {")).map((l) => JSON.parse(l.slice(l.indexOf("{"))));
  expect(done.length).toBeGreaterThan(0);
  for (const d of done) expect(d).toEqual({ greeted: VISITORS, exactlyOnce: true });
  const greetings = lines.filter((l) => l.startsWith("[greeter] Hello, visitor-"));
  expect(new Set(greetings).size, "a greeting printed twice").toBe(greetings.length);
  expect(greetings.length).toBeLessThanOrEqual(VISITORS);
}

describe(`apps/hello under SIGKILL (seed ${SEED})`, () => {
  it("immortal dev, killed three times at random moments, finishes exactly once", async () => {
    const data = mkdtempSync(path.join(os.tmpdir(), "hello-dev-"));
    cleanup.push(() => rmSync(data, { recursive: true, force: true }));
    const lines: string[] = [];
    const env = { ...process.env, HELLO_VISITORS: String(VISITORS) };
    const dev = supervise([IMMORTAL, "dev", ENTRY, "--data", data], env, lines);
    const rnd = prng(SEED);
    const greeted = () => lines.filter((l) => l.startsWith("[greeter] Hello")).length;
    for (let k = 0; k < 3; k++) {
      const at = greeted() + 10 + Math.floor(rnd() * 40);
      await until(() => greeted() >= at || lines.some((l) => l.includes("DONE {")), `greeting ${at}`, 30_000);
      dev.kill();
    }
    await until(() => lines.some((l) => l.includes("DONE {")), "the greeter to finish", 60_000);
    check(lines);
  }, 120_000);

  it("separate coordinator and instance processes, killed at random, finish exactly once", async () => {
    const home = mkdtempSync(path.join(os.tmpdir(), "hello-procs-"));
    cleanup.push(() => rmSync(home, { recursive: true, force: true }));
    const env = {
      ...process.env,
      IMMORTAL_HOME: home,
      HELLO_VISITORS: String(VISITORS),
      IMMORTAL_LOG_LEVEL: "warn",
    };
    // Below the ephemeral range, in this file's own range (see tools/testkit/README.md).
    const base = 24000 + Math.floor(Math.random() * 290) * 10;
    const ports = { greeter: base, counter: base + 5 };
    for (const [name, p] of Object.entries(ports)) {
      execFileSync(
        process.execPath,
        [
          IMMORTAL,
          "register",
          "-i",
          name,
          "-rp",
          String(p),
          "-sp",
          String(p + 1),
          "-p",
          String(p + 2),
          "-l",
          path.join(home, "logs"),
        ],
        { env },
      );
    }
    const lines: string[] = [];
    const procs = [
      supervise([IMMORTAL, "coordinator", "-i", "greeter"], env, []),
      supervise([IMMORTAL, "coordinator", "-i", "counter"], env, []),
      supervise([IMMORTAL, "run", ENTRY, "--instance", "greeter"], env, lines),
      supervise([IMMORTAL, "run", ENTRY, "--instance", "counter"], env, lines),
    ];
    const rnd = prng(SEED + 1);
    const done = () => lines.some((l) => l.includes("DONE {"));
    let kills = 0;
    while (kills < 8 && !done()) {
      await new Promise((r) => setTimeout(r, 150 + rnd() * 500));
      if (procs[Math.floor(rnd() * procs.length)]!.kill()) kills++;
    }
    await until(done, "the greeter to finish", 90_000);
    check(lines);
  }, 150_000);
});
