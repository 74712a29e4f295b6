// Fault scenario 11: damaged logs on real processes. A PTI run is stopped mid-run (every process SIGKILLed), then
// the client's log is damaged in its last record — cut at a random byte (a torn write) or with a flipped bit — and
// everything is started again: the damage is found by the length and check bytes, the record is truncated and
// reported, and the run completes exactly (replay regenerates the self-call the cut record held). Corruption before
// the tail, in the server's log: its coordinator refuses to start with a clear FATAL ERROR naming the file, and
// leaves every file byte for byte as it was.
import { createHash } from "node:crypto";
import { readdirSync, readFileSync, truncateSync, writeFileSync } from "node:fs";
import path from "node:path";
import { FileInstanceStorage } from "@immortal/coordinator";
import { describe, expect, it } from "vitest";
import { prng } from "../../testkit/src/processes.js";
import type { Cluster } from "../src/cluster.js";
import { checkPti, serverReports } from "../src/pti.js";
import { afterRounds, LONG_RUN, pti, ptiDone, SEED } from "./support.js";

async function lastLog(c: Cluster, instance: string) {
  const storage = FileInstanceStorage.forInstance(c.logDir, instance, 0);
  const logs = await storage.listLogs();
  const n = logs.at(-1)!;
  const scan = await storage.scanLog(n, { isLastLog: true, repair: false });
  expect(scan.tail, "the log ends cleanly before the damage").toBeUndefined();
  return { file: storage.logPath(n), units: scan.units, dir: storage.dir };
}

/** Every file of a folder with its hash (the coordinator's stats file aside: it is rewritten while running). */
const hashes = (dir: string) =>
  readdirSync(dir)
    .filter((f) => !f.startsWith("stats.json"))
    .sort()
    .map(
      (f) =>
        `${f} ${createHash("sha256")
          .update(readFileSync(path.join(dir, f)))
          .digest("hex")}`,
    );

describe(`scenario 11: damaged logs (seed ${SEED})`, { timeout: 180_000 }, () => {
  const rnd = prng(SEED + 11);
  for (const damage of ["torn tail", "flipped bit in the tail"] as const) {
    it(`${damage}: detected, truncated, reported; the run completes exactly`, async () => {
      const c = await pti(LONG_RUN, { noRestart: true });
      c.startAll();
      await afterRounds(c, 2);
      await Promise.all([c.stopInstance("client"), c.stopInstance("server")]);
      const { file, units } = await lastLog(c, "client");
      const last = units.at(-1)!;
      if (damage === "torn tail") {
        truncateSync(file, last.offset + 1 + Math.floor(rnd() * (last.length - 2)));
      } else {
        const bytes = readFileSync(file);
        bytes[last.offset + Math.floor(rnd() * last.length)]! ^= 1 << Math.floor(rnd() * 8);
        writeFileSync(file, bytes);
      }
      c.startAll();
      await ptiDone(c);
      expect(checkPti(LONG_RUN, serverReports(c), c.get("server").binding.lines)).toEqual([]);
      const restarted = c.get("client").coordinator.log().split("==== start 2")[1] ?? "";
      expect(restarted).toMatch(/torn log tail truncated/);
    });
  }

  it("corruption before the tail: refuses to start with a clear message, files untouched", async () => {
    const c = await pti(LONG_RUN, { noRestart: true });
    c.startAll();
    await afterRounds(c, 2);
    await Promise.all([c.stopInstance("client"), c.stopInstance("server")]);
    const { file, units, dir } = await lastLog(c, "server");
    expect(units.length).toBeGreaterThan(4);
    const victim = units[1 + Math.floor(rnd() * (units.length - 3))]!;
    const bytes = readFileSync(file);
    bytes[victim.offset + Math.floor(rnd() * victim.length)]! ^= 0x10;
    writeFileSync(file, bytes);
    const before = hashes(dir);
    const server = c.get("server");
    c.startInstance("server");
    await server.coordinator.waitFor(
      () => server.coordinator.exits.length === 2,
      "the coordinator to stop",
      30_000,
    );
    expect(server.coordinator.exits[1]).toEqual({ code: 1, signal: null });
    const fatal = server.coordinator.currentRunLines().filter((l) => l.startsWith("FATAL ERROR"));
    expect(fatal).toHaveLength(1);
    expect(fatal[0]).toContain(path.basename(file));
    console.log(`[scenario 11] ${fatal[0]}`);
    expect(hashes(dir)).toEqual(before);
  });
});
