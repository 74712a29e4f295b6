// Fault scenario 3: the server's binding and coordinator SIGKILLed mid-run (twice, after rounds picked by the
// seed) and restarted. Pass: exact byte counts, no duplicate and no gap in the call numbers.
import { describe, expect, it } from "vitest";
import { prng } from "../../testkit/src/processes.js";
import { checkPti, serverReports } from "../src/pti.js";
import { afterRounds, killAndAwaitRestart, LONG_RUN, pti, ptiDone, SEED, sleep } from "./support.js";

describe(`scenario 3: kill the server side (seed ${SEED})`, { timeout: 180_000 }, () => {
  it("exact byte counts, no duplicate, no gap", async () => {
    const c = await pti(LONG_RUN, { logTriggerSizeMB: 1 });
    const rnd = prng(SEED + 3);
    const server = c.get("server");
    c.startAll();
    for (const round of [2, 5]) {
      await afterRounds(c, round);
      await sleep(rnd() * 100);
      await killAndAwaitRestart(server.binding, server.coordinator);
    }
    await ptiDone(c);
    const reports = serverReports(c);
    expect(checkPti(LONG_RUN, reports, server.binding.lines)).toEqual([]);
    expect(reports[0]).toMatchObject({ duplicates: 0, gaps: 0 });
    expect([server.binding.starts, server.coordinator.starts]).toEqual([3, 3]);
  });
});
