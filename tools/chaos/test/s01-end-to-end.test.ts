// Fault scenario 1 (end to end): a PTI client and server, each a real `immortal coordinator` and `immortal run`
// process, several rounds of halving message sizes. Pass: the server received exactly the bytes sent, every call
// number once and in order, one line per round with its exact size and count, and `Bytes received`/`DONE` once.
import { describe, expect, it } from "vitest";
import { checkPti, expectedRounds, type PtiConfig, serverReports } from "../src/pti.js";
import { pti, ptiDone } from "./support.js";

describe("scenario 1: end to end", { timeout: 180_000 }, () => {
  it("the server receives exactly the bytes sent, in order, round by round", async () => {
    const cfg: PtiConfig = { rounds: 4, bytesPerRound: 1 << 20, maxSize: 8192, stepBytes: 65536 };
    const c = await pti(cfg);
    c.startAll();
    await ptiDone(c);
    const server = c.get("server").binding;
    expect(checkPti(cfg, serverReports(c), server.lines)).toEqual([]);
    // Nothing was killed, so every live line is there, once, with the exact figures.
    for (const [r, want] of expectedRounds(cfg).entries()) {
      const lines = server.lines.filter((l) => l.startsWith(`[server] Round ${r}: `));
      expect(lines).toHaveLength(1);
      expect(lines[0]).toMatch(
        new RegExp(`^\\[server\\] Round ${r}: size ${want.size} B, ${want.messages} messages, `),
      );
    }
    expect(server.lines.filter((l) => l === `[server] Bytes received: ${4 << 20}`)).toHaveLength(1);
    expect(server.lines.filter((l) => l.startsWith("[server] DONE {"))).toHaveLength(1);
    for (const p of c.procs()) expect(p.starts, p.label).toBe(1);
  });
});
