// Fault scenario 12: malformed input on both kinds of port while a PTI run is in progress. On the running server's
// IC-to-IC port: random bytes, a 2 GiB frame, a negative length, an empty frame, a truncated frame. On a second,
// idle pair's server coordinator, the binding socket (the send port held as a binding would): random bytes, a huge
// size, a negative size, a truncated message. And a second "binding" on the busy server's receive port. Pass: every
// such connection is closed by the coordinator, which says why in its log; no coordinator dies; the busy run
// completes exactly; the idle pair's logs end cleanly and it then runs to completion from them.
import net from "node:net";
import { FileInstanceStorage } from "@immortal/coordinator";
import { describe, expect, it } from "vitest";
import { sendGarbage } from "../../../packages/coordinator/test/support/garbage.js";
import { prng } from "../../testkit/src/processes.js";
import type { Cluster } from "../src/cluster.js";
import { checkPti, serverReports } from "../src/pti.js";
import { LONG_RUN, pti, ptiDone, SEED } from "./support.js";

const garbage = (port: number, bytes: Uint8Array, ms = 5000) => sendGarbage(port, bytes, ms);

function randomBytes(rnd: () => number, max: number): Uint8Array {
  return Uint8Array.from({ length: 1 + Math.floor(rnd() * max) }, () => Math.floor(rnd() * 256));
}

async function logsEndCleanly(c: Cluster, instance: string): Promise<void> {
  const storage = FileInstanceStorage.forInstance(c.logDir, instance, 0);
  const logs = await storage.listLogs();
  for (const n of logs) {
    const scan = await storage.scanLog(n, { isLastLog: n === logs.at(-1), repair: false });
    expect(scan.tail, `${instance} log ${n} ends cleanly`).toBeUndefined();
  }
}

describe(`scenario 12: malformed input (seed ${SEED})`, { timeout: 180_000 }, () => {
  it("connections closed with a reason, logs intact, the other instances kept being served", async () => {
    const rnd = prng(SEED + 12);
    const busy = await pti(LONG_RUN, { noRestart: true });
    const idleCfg = { rounds: 2, bytesPerRound: 128 * 1024, maxSize: 2048 };
    const idle = await pti(idleCfg, { noRestart: true });
    busy.startAll();
    for (const i of idle.instances.values()) i.coordinator.start();
    const server = busy.get("server");
    await server.binding.waitFor(
      () => server.binding.lines.includes("[run] server is primary"),
      "primary",
      30_000,
    );

    const icFrames = [
      ...Array.from({ length: 30 }, () => randomBytes(rnd, 512)),
      Uint8Array.from([0xff, 0xff, 0xff, 0x7f, 1]), // a 2 GiB frame
      Uint8Array.from([0xff, 0xff, 0xff, 0xff, 1]), // a negative (or 4 GiB) length
      Uint8Array.from([0, 0, 0, 0]), // an empty frame
      Uint8Array.from([100, 0, 0, 0, 1, 2, 3]), // a frame cut short
    ];
    for (const f of icFrames) expect(await garbage(server.ports.ic, f)).toBe("closed");

    // A second binding on the busy server's receive port is refused; its own binding carries on.
    expect(await garbage(server.ports.receive, randomBytes(rnd, 64))).toBe("closed");

    const victim = idle.get("server");
    await victim.coordinator.waitFor(() => victim.coordinator.lines.includes("Ready"), "Ready", 30_000);
    const bindingMessages = [
      ...Array.from({ length: 15 }, () => randomBytes(rnd, 256)),
      Uint8Array.from([0xfe, 0xff, 0xff, 0xff, 0x0f, 2]), // size 2^31 - 1
      Uint8Array.from([0x09, 2, 0, 0]), // ZigZag -5: a negative size
      Uint8Array.from([0xc8, 0x01, 2, 1, 2, 3]), // 100 bytes announced, 4 sent
    ];
    for (const m of bindingMessages) {
      // A session needs both ports: hold the send port as a binding would, write garbage to the receive port.
      const send = net.connect({ port: victim.ports.send, host: "127.0.0.1" });
      send.on("error", () => {});
      send.resume();
      expect(await garbage(victim.ports.receive, m)).toBe("closed");
      send.destroy();
    }

    await ptiDone(busy);
    expect(checkPti(LONG_RUN, serverReports(busy), server.binding.lines)).toEqual([]);
    for (const p of [...busy.procs(), ...idle.procs()])
      expect(p.exits, `${p.label} never stopped`).toEqual([]);
    expect(server.coordinator.log()).toMatch(/malformed IC traffic, closing|did not start with HELLO/);
    expect(server.coordinator.log()).toMatch(/a binding is already attached; refusing another connection/);
    expect(victim.coordinator.log()).toMatch(/closing the binding connection|binding session ended/);

    await logsEndCleanly(idle, "server");
    for (const i of idle.instances.values()) i.binding.start();
    await ptiDone(idle);
    expect(checkPti(idleCfg, serverReports(idle), victim.binding.lines)).toEqual([]);
    await logsEndCleanly(busy, "server");
  });
});
