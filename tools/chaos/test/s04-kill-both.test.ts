// Fault scenario 4: both sides SIGKILLed mid-run (all four processes), then restarted one side first and the other
// a while later, in either order. Pass: exact byte counts, no duplicate, no gap.
import { describe, expect, it } from "vitest";
import { checkPti, serverReports } from "../src/pti.js";
import { afterRounds, LONG_RUN, pti, ptiDone, SEED, sleep } from "./support.js";

describe(`scenario 4: kill both sides, restart in either order (seed ${SEED})`, { timeout: 180_000 }, () => {
  for (const first of ["client", "server"] as const) {
    it(`${first} first`, async () => {
      const c = await pti(LONG_RUN, { logTriggerSizeMB: 1, noRestart: true });
      c.startAll();
      await afterRounds(c, 3);
      await Promise.all([c.stopInstance("client"), c.stopInstance("server")]);
      const second = first === "client" ? "server" : "client";
      c.startInstance(first);
      // The first side recovers and runs on its own (its outgoing messages wait, or its input is silent).
      await c.get(first).binding.waitFor(
        () =>
          c
            .get(first)
            .binding.currentRunLines()
            .some((l) => l.startsWith("[run] ")),
        `${first} to recover`,
        30_000,
      );
      await sleep(500);
      c.startInstance(second);
      await ptiDone(c);
      expect(checkPti(LONG_RUN, serverReports(c), c.get("server").binding.lines)).toEqual([]);
      for (const p of c.procs()) expect(p.starts, p.label).toBe(2);
    });
  }
});
