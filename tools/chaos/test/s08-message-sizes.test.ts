// Fault scenario 8: message-size extremes on real processes. 16-byte messages (the smallest PTI payload: the call
// number and padding), 64 MiB messages (one RPC bigger than any batch or socket buffer: the wire and log paths
// must frame, log, replay and deliver it whole; also after the server side is SIGKILLed with one in its log), and a
// fixed-size run whose per-round output is exact.
import { existsSync, readdirSync, statSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { checkPti, expectedRounds, type PtiConfig, serverReports } from "../src/pti.js";
import { pti, ptiDone, sleep } from "./support.js";

const MIB = 1024 * 1024;

/** Runs `cfg` to completion and checks it; returns the server's output lines. */
async function run(cfg: PtiConfig): Promise<string[]> {
  const c = await pti(cfg, { noRestart: true });
  c.startAll();
  await ptiDone(c, 180_000);
  const lines = c.get("server").binding.lines;
  expect(checkPti(cfg, serverReports(c), lines)).toEqual([]);
  // Nothing was killed: every round's line is there once, with its exact size and message count.
  for (const [r, want] of expectedRounds(cfg).entries()) {
    const size = cfg.randomSeed === undefined ? `${want.size}` : "random";
    const found = lines.filter((l) =>
      l.startsWith(`[server] Round ${r}: size ${size} B, ${want.messages} messages, `),
    );
    expect(found, `the line of round ${r}`).toHaveLength(1);
  }
  return lines;
}

describe("scenario 8: message-size extremes", { timeout: 180_000 }, () => {
  it("16-byte messages", async () => {
    await run({ rounds: 2, bytesPerRound: 64 * 1024, maxSize: 16, fixedSize: 16, stepBytes: 16384 });
  });

  it("64 MiB messages", async () => {
    await run({ rounds: 1, bytesPerRound: 128 * MIB, maxSize: 64 * MIB, fixedSize: 64 * MIB, stepBytes: 1 });
  }, 240_000);

  it("64 MiB messages, the server side SIGKILLed once the first is logged: replayed whole, exact", async () => {
    const cfg: PtiConfig = {
      rounds: 1,
      bytesPerRound: 192 * MIB,
      maxSize: 64 * MIB,
      fixedSize: 64 * MIB,
      stepBytes: 1,
    };
    const c = await pti(cfg, { noRestart: true });
    c.startAll();
    const server = c.get("server");
    const logged = () => {
      const dir = path.join(c.logDir, "server_0");
      if (!existsSync(dir)) return 0;
      return readdirSync(dir)
        .filter((f) => f.startsWith("serverlog"))
        .reduce((a, f) => a + statSync(path.join(dir, f)).size, 0);
    };
    const deadline = Date.now() + 120_000;
    while (logged() < 64 * MIB && Date.now() < deadline) await sleep(20);
    expect(serverReports(c), "finished before the kill").toEqual([]);
    await c.stopInstance("server");
    c.startInstance("server");
    await ptiDone(c, 180_000);
    expect(checkPti(cfg, serverReports(c), server.binding.lines)).toEqual([]);
    expect(server.binding.starts).toBe(2);
  }, 300_000);

  it("a fixed-size run: exactly floor(bytes / size) messages every round", async () => {
    const lines = await run({ rounds: 3, bytesPerRound: 100_000, maxSize: 1000, fixedSize: 1000 });
    expect(lines.filter((l) => /^\[server\] Round \d: size 1000 B, 100 messages, /.test(l))).toHaveLength(3);
    expect(lines).toContain("[server] Bytes received: 300000");
  });
});
