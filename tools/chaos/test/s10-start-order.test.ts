// Fault scenario 10: start-up order and an absent destination, on real processes that are never restarted here
// (a process that gave up would fail the test). Apps (`immortal run`) started before their coordinators; the
// coordinators started first; and the server side down for a while in the middle of the run. Pass: every run
// completes with exact counts and no process had to be started twice.
import { describe, expect, it } from "vitest";
import { checkPti, type PtiConfig, serverReports } from "../src/pti.js";
import { afterRounds, LONG_RUN, pti, ptiDone, sleep } from "./support.js";

const SHORT: PtiConfig = { rounds: 3, bytesPerRound: 256 * 1024, maxSize: 4096, stepBytes: 32768 };

describe("scenario 10: start order and a destination that is down", { timeout: 180_000 }, () => {
  it("apps started before their coordinators", async () => {
    const c = await pti(SHORT, { noRestart: true });
    for (const i of c.instances.values()) i.binding.start();
    await sleep(1500);
    for (const i of c.instances.values()) expect(i.binding.running, `${i.name} binding waits`).toBe(true);
    for (const i of c.instances.values()) i.coordinator.start();
    await ptiDone(c);
    expect(checkPti(SHORT, serverReports(c), c.get("server").binding.lines)).toEqual([]);
    for (const p of c.procs()) expect(p.starts, p.label).toBe(1);
  });

  it("coordinators started before their apps", async () => {
    const c = await pti(SHORT, { noRestart: true });
    for (const i of c.instances.values()) i.coordinator.start();
    for (const i of c.instances.values())
      await i.coordinator.waitFor(() => i.coordinator.lines.includes("Ready"), `${i.name} Ready`, 30_000);
    await sleep(1000);
    for (const i of c.instances.values()) i.binding.start();
    await ptiDone(c);
    expect(checkPti(SHORT, serverReports(c), c.get("server").binding.lines)).toEqual([]);
    for (const p of c.procs()) expect(p.starts, p.label).toBe(1);
  });

  it("the destination down for a while mid-run", async () => {
    const c = await pti(LONG_RUN, { noRestart: true });
    c.startAll();
    await afterRounds(c, 2);
    await c.stopInstance("server");
    await sleep(2500);
    // The client keeps running while its destination is away (its output waits in its coordinator).
    const client = c.get("client");
    expect(client.coordinator.running && client.binding.running).toBe(true);
    c.startInstance("server");
    await ptiDone(c);
    expect(checkPti(LONG_RUN, serverReports(c), c.get("server").binding.lines)).toEqual([]);
    expect([client.coordinator.starts, client.binding.starts]).toEqual([1, 1]);
  });
});
