// Fault scenario 2: the client's binding and its coordinator SIGKILLed mid-run, twice (after rounds picked by the
// seed), and restarted. Pass: the run completes with exact byte and message counts, no duplicate, no gap.
import { describe, expect, it } from "vitest";
import { prng } from "../../testkit/src/processes.js";
import { checkPti, serverReports } from "../src/pti.js";
import { afterRounds, killAndAwaitRestart, LONG_RUN, pti, ptiDone, SEED, sleep } from "./support.js";

describe(`scenario 2: kill the client side twice (seed ${SEED})`, { timeout: 180_000 }, () => {
  it("completes with exact byte counts", async () => {
    const c = await pti(LONG_RUN, { logTriggerSizeMB: 1 });
    const rnd = prng(SEED);
    const client = c.get("client");
    c.startAll();
    for (const round of [2, 5]) {
      await afterRounds(c, round);
      await sleep(rnd() * 100);
      await killAndAwaitRestart(client.binding, client.coordinator);
    }
    await ptiDone(c);
    expect(checkPti(LONG_RUN, serverReports(c), c.get("server").binding.lines)).toEqual([]);
    expect([client.binding.starts, client.coordinator.starts]).toEqual([3, 3]);
    expect(c.get("server").coordinator.starts).toBe(1);
  });
});
