// Fault scenario 6, "replay equals original": apps/pti (client and server) is run live to completion, then each
// instance is replayed with `immortal debug --checkpoint 1` over the finished logs. The replay must print the
// same output lines — per-round message counts, `Bytes received: N`, the DONE and ECHO DONE order checks —
// in the same order. Only the rates differ: they are the live process's wall-clock measurements, and a
// replayed round says "rate not measured".
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { killRunning, runNode } from "./support/run.js";

const here = path.dirname(fileURLToPath(import.meta.url));
const IMMORTAL = path.join(here, "../bin/immortal.mjs");
const PTI = path.join(here, "../../../apps/pti/dist/main.js");

const roots: string[] = [];
afterEach(() => killRunning());
afterAll(() => {
  for (const r of roots) rmSync(r, { recursive: true, force: true });
});

/** The instance's output lines, with the rate (the only wall-clock figure) cut off the round lines. */
function outputs(lines: string[], instance: string): string[] {
  return lines
    .filter((l) => l.startsWith(`[${instance}] `))
    .map((l) => l.replace(/^(\[server\] Round \d+: size \S+ B, \d+ messages), .*$/, "$1"));
}

describe("apps/pti: replay equals original", () => {
  it("immortal debug --checkpoint 1 prints the live run's output lines, for the server and the client", async () => {
    if (!existsSync(PTI)) throw new Error(`${PTI} is not built: run 'npx -y pnpm@10 build' first`);
    const data = mkdtempSync(path.join(os.tmpdir(), "pti-replay-"));
    roots.push(data);
    const env = {
      ...process.env,
      PTI_ROUNDS: "3",
      PTI_BYTES_PER_ROUND: `${256 * 1024}`,
      PTI_MAX_SIZE: "4096",
      PTI_STEP_BYTES: "65536",
      PTI_ECHO: "1",
      IMMORTAL_LOG_LEVEL: "warn",
    };
    const live = await runNode([IMMORTAL, "dev", PTI, "--data", data], {
      env,
      ms: 90_000,
      what: "the live PTI run",
      until: (out) =>
        out.some((l) => l.startsWith("[server] DONE {")) &&
        out.some((l) => l.startsWith("[client] ECHO DONE {")),
    });
    expect(live.code, live.stderr.join("\n")).toBe(0);
    const server = outputs(live.stdout, "server");
    const client = outputs(live.stdout, "client");
    // The live run itself is right: 64 + 128 + 256 messages, every byte, no duplicate, no gap.
    const messages = 64 + 128 + 256;
    expect(server).toEqual([
      "[server] Round 0: size 4096 B, 64 messages",
      "[server] Round 1: size 2048 B, 128 messages",
      "[server] Round 2: size 1024 B, 256 messages",
      `[server] Bytes received: ${3 * 256 * 1024}`,
      `[server] DONE ${JSON.stringify({ bytes: 3 * 256 * 1024, messages, rounds: 3, duplicates: 0, gaps: 0, lastCall: messages })}`,
    ]);
    expect(client).toEqual([
      `[client] ECHO DONE ${JSON.stringify({ sent: messages, echoes: messages, lastEcho: messages, outOfOrder: 0 })}`,
    ]);
    for (const [instance, expected] of [
      ["server", server],
      ["client", client],
    ] as const) {
      const r = await runNode(
        [IMMORTAL, "debug", PTI, "--instance", instance, "--data", data, "--checkpoint", "1"],
        {
          env,
          ms: 60_000,
          what: `immortal debug ${instance}`,
        },
      );
      expect(r.code, r.stderr.join("\n")).toBe(0);
      expect(outputs(r.stdout, instance)).toEqual(expected);
      expect(
        r.stdout
          .filter((l) => l.startsWith("[server] Round "))
          .every((l) => l.endsWith("rate not measured (round replayed after a restart)")),
      ).toBe(true);
      expect(r.stderr.join("\n")).toMatch(/0 divergences, 0 without a record/);
    }
  }, 150_000);
});
