// Fault scenario 7: a giant checkpoint. The PTI server's state is padded (IMMORTAL_GIANT_MB, default 96 MB in CI;
// hundreds of MB outside it), the instances are registered with a 1 MB log trigger so checkpoints of the whole
// state are taken while the run goes on, then the server's coordinator and binding are SIGKILLed and recover from
// the newest checkpoint. Pass: the checkpoint on disk holds the whole state, the recovered state reports the same
// exact figures (padding included), and the server coordinator's peak RSS stays within half the state size of the
// client's coordinator (same code and traffic, tiny state): it streams the checkpoint to disk and back instead of
// holding it. The peak RSS of both server processes is printed beside the state size.
import { readdirSync, statSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { checkPti, type PtiConfig, serverReports } from "../src/pti.js";
import { pti, ptiDone } from "./support.js";

const MB = 1024 * 1024;
const PADDING_MB = Number(process.env.IMMORTAL_GIANT_MB ?? 96);

function checkpoints(dir: string): Array<{ n: number; bytes: number }> {
  return readdirSync(dir)
    .filter((f) => /^serverchkpt\d+$/.test(f))
    .map((f) => ({ n: Number(f.slice("serverchkpt".length)), bytes: statSync(path.join(dir, f)).size }))
    .sort((a, b) => a.n - b.n);
}

describe(`scenario 7: giant checkpoint (${PADDING_MB} MB of state)`, () => {
  it("is taken, written and recovered from, streaming, with bounded coordinator memory", async () => {
    const cfg: PtiConfig = {
      rounds: 2,
      bytesPerRound: 2 * MB,
      maxSize: 4096,
      stepBytes: 65536,
      statePaddingMb: PADDING_MB,
    };
    const c = await pti(cfg, { logTriggerSizeMB: 1, noRestart: true });
    const server = c.get("server");
    server.coordinator.trackRss();
    server.binding.trackRss();
    // The baseline: the client's coordinator runs the same code and traffic with a tiny state.
    const baseline = c.get("client").coordinator;
    baseline.trackRss();
    c.startAll();
    await ptiDone(c, 240_000);
    const dir = path.join(c.logDir, "server_0");
    const taken = checkpoints(dir);
    // The first checkpoint (at first start) and at least one taken as the log grew, each the whole state.
    expect(taken.at(-1)!.n).toBeGreaterThan(1);
    for (const k of taken) expect(k.bytes).toBeGreaterThan(PADDING_MB * MB);

    await c.stopInstance("server");
    const newest = checkpoints(dir).at(-1)!.n;
    const live = { coordinator: server.coordinator.peakRssKb, binding: server.binding.peakRssKb };
    c.startInstance("server");
    await server.binding.waitFor(
      () => server.binding.currentRunLines().some((l) => l.startsWith("PTI {")),
      "the recovered server's report",
      240_000,
    );
    const reports = serverReports(c);
    expect(reports).toHaveLength(2);
    expect(reports[1]).toEqual(reports[0]);
    expect(checkPti(cfg, reports, server.binding.lines)).toEqual([]);
    const recoveredFrom = /"checkpoint":(\d+)[^\n]*recovering|recovering[^\n]*"checkpoint":(\d+)/.exec(
      server.coordinator.log().split("==== start 2")[1] ?? "",
    );
    // From the newest checkpoint written before the kill (recovery then takes one of its own).
    expect(Number(recoveredFrom?.[1] ?? recoveredFrom?.[2])).toBe(newest);

    await c.stopInstance("server");
    const mb = (kb: number) => (kb / 1024).toFixed(0);
    console.log(
      `[scenario 7] state ${PADDING_MB} MB, checkpoint ${(taken.at(-1)!.bytes / MB).toFixed(1)} MB; peak RSS ` +
        `coordinator ${mb(live.coordinator)} MB live / ${mb(server.coordinator.peakRssKb)} MB over both runs, ` +
        `binding ${mb(live.binding)} MB live / ${mb(server.binding.peakRssKb)} MB over both runs; ` +
        `baseline (the client's coordinator) ${mb(baseline.peakRssKb)} MB`,
    );
    // Bounded: the coordinator never holds the checkpoint (a coordinator that did would be a whole state above
    // the baseline); the binding holds the state itself.
    expect((server.coordinator.peakRssKb - baseline.peakRssKb) / 1024).toBeLessThan(PADDING_MB / 2);
  }, 300_000);
});
