// Two instances on two coordinators, each a separate process with its own binding process; 100,000 forks from
// client to server while processes are SIGKILLed at seeded random moments. Pass: the server's binding sees
// every call number exactly once, in order (no duplicate, no gap, nothing extra), however often it restarts.
import { afterAll, describe, expect, it } from "vitest";
import { Cluster, prng } from "../support/harness.js";

const TOTAL = 100_000;
const KILLS = Number(process.env.IMMORTAL_TEST_KILLS ?? 24);
const SEED = Number(process.env.IMMORTAL_TEST_SEED ?? Date.now() % 1_000_000);

describe("exactly-once forks between two coordinators under SIGKILL", () => {
  const cluster = new Cluster();
  afterAll(async () => {
    await cluster.stop();
    cluster.cleanup();
  });

  it(`delivers ${TOTAL} forks exactly once, in order, through ${KILLS} kills (seed ${SEED})`, async () => {
    // Small continuation steps and a small log trigger so that checkpoints, rotations and replays all happen.
    await cluster.add({ name: "server", binding: { role: "server", total: TOTAL }, logTriggerSizeMB: 1 });
    await cluster.add({
      name: "client",
      binding: { role: "client", dest: "server", total: TOTAL, step: 500 },
      logTriggerSizeMB: 1,
    });
    cluster.start();
    await cluster.waitFor(
      () => cluster.output("client", "binding").includes("READY-PRIMARY"),
      20_000,
      "client primary",
    );

    const rnd = prng(SEED);
    const targets = [
      ["client", "ic"],
      ["client", "binding"],
      ["server", "ic"],
      ["server", "binding"],
    ] as const;
    let kills = 0;
    const done = () => cluster.output("server", "binding").some((l) => l.startsWith("DONE"));
    while (kills < KILLS) {
      await new Promise((r) => setTimeout(r, 40 + rnd() * 400));
      const [name, which] = targets[Math.floor(rnd() * targets.length)]!;
      if (cluster.kill(name, which)) kills++;
    }
    await cluster.waitFor(done, 90_000, "the server to receive every fork");
    // Give stragglers (duplicates that a bug would deliver late) a moment to show up.
    await new Promise((r) => setTimeout(r, 500));

    const serverLines = cluster.output("server", "binding");
    const fatal = [...serverLines, ...cluster.output("client", "binding")].filter((l) =>
      l.startsWith("BINDING FATAL"),
    );
    expect(fatal).toEqual([]);
    expect(serverLines.filter((l) => l.startsWith("EXTRA"))).toEqual([]);
    const dones = serverLines.filter((l) => l.startsWith("DONE")).map((l) => JSON.parse(l.slice(5)));
    expect(dones.length).toBeGreaterThan(0);
    for (const d of dones) expect(d).toMatchObject({ count: TOTAL, last: TOTAL, duplicates: 0, gaps: 0 });
    expect(kills).toBe(KILLS);
    const restarts = cluster.starts("server", "ic") + cluster.starts("client", "ic") - 2;
    console.log(`seed ${SEED}: ${kills} kills, ${restarts} coordinator restarts, ${TOTAL} forks checked`);
  }, 180_000);
});
