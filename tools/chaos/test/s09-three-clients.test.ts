// Fault scenario 9: three PTI clients (client-0..client-2, each its own coordinator and binding process) send to
// one server at once. Call numbers are per client, so the server checks each client's order on its own. Pass:
// every client's bytes and messages exact, no duplicate and no gap for any of them.
import { describe, expect, it } from "vitest";
import { checkPti, expectedBytesPerClient, type PtiConfig, serverReports } from "../src/pti.js";
import { pti, ptiDone } from "./support.js";

describe("scenario 9: three clients to one server", { timeout: 180_000 }, () => {
  it("each client's counts are exact", async () => {
    const cfg: PtiConfig = {
      rounds: 3,
      bytesPerRound: 512 * 1024,
      maxSize: 4096,
      stepBytes: 32768,
      clients: 3,
    };
    const c = await pti(cfg, { noRestart: true });
    c.startAll();
    await ptiDone(c);
    const [report] = serverReports(c);
    expect(checkPti(cfg, [report!], c.get("server").binding.lines)).toEqual([]);
    const perClient = expectedBytesPerClient(cfg);
    const messages = 128 + 256 + 512;
    expect(Object.keys(report!.clients).sort()).toEqual(["client-0", "client-1", "client-2"]);
    for (const x of Object.values(report!.clients))
      expect(x).toEqual({
        lastCall: messages,
        received: messages,
        bytes: perClient,
        duplicates: 0,
        gaps: 0,
        done: true,
      });
    expect(report!.bytes).toBe(3 * perClient);
  });
});
