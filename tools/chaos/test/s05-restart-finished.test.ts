// Fault scenario 5: a finished PTI run stopped, then every process started again on its logs. Pass: recovery
// replays to the same final state (the server's figures are identical), prints none of the live-only lines again,
// and sends nothing new: a further clean recovery of the server, after the client has recovered and run live, still
// shows exactly the same figures (a message sent again would count as a duplicate or an extra message).
import { describe, expect, it } from "vitest";
import { checkPti, type PtiConfig, serverReports } from "../src/pti.js";
import { pti, ptiDone, sleep } from "./support.js";

describe("scenario 5: restart on the logs of a finished run", { timeout: 180_000 }, () => {
  it("replays to the same final state and sends nothing new", async () => {
    const cfg: PtiConfig = { rounds: 3, bytesPerRound: 512 * 1024, maxSize: 4096, stepBytes: 32768 };
    const c = await pti(cfg, { logTriggerSizeMB: 1, noRestart: true });
    c.startAll();
    await ptiDone(c);
    const server = c.get("server").binding;
    const client = c.get("client").binding;
    const [original] = serverReports(c);
    expect(checkPti(cfg, [original!], server.lines)).toEqual([]);
    await c.stopAll();

    const liveLines = (lines: string[]) => lines.filter((l) => /^\[server\] (Round|Bytes|DONE)/.test(l));
    c.startAll();
    await server.waitFor(
      () => server.currentRunLines().some((l) => l.startsWith("PTI {")),
      "the report",
      60_000,
    );
    await client.waitFor(
      () => client.currentRunLines().includes("[run] client is primary"),
      "the client",
      60_000,
    );
    await sleep(1000); // the client is live: anything it would send again has had time to arrive
    expect(liveLines(server.currentRunLines())).toEqual([]);
    await server.stop();
    server.start();
    await server.waitFor(
      () => server.currentRunLines().some((l) => l.startsWith("PTI {")),
      "the report",
      60_000,
    );
    const reports = serverReports(c);
    expect(reports).toHaveLength(3);
    for (const r of reports) expect(r).toEqual(original);
    expect(liveLines(server.currentRunLines())).toEqual([]);
  });
});
