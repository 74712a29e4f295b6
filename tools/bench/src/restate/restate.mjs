// Restate, the side-by-side peer: the npm restate-server (its own linux-x64 binary, default configuration:
// RocksDB WAL with fsync on) and a keyed virtual object counter served by the Restate TypeScript SDK, driven
// through the HTTP ingress by the same workload code as Immortal.
import { mkdtempSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { freePort, start } from "../procs.mjs";
import { concurrency, latency, sleep } from "../workloads.mjs";

const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(import.meta.url);

/** The restate-server executable shipped by the npm package's platform dependency. */
export function restateServerBinary() {
  const pkg = require.resolve("@restatedev/restate-server/package.json");
  const fromPkg = createRequire(pkg);
  return fromPkg.resolve(`@restatedev/restate-server-${os.platform()}-${os.arch()}/bin/restate-server`);
}

export function restateVersions() {
  return {
    server: require("@restatedev/restate-server/package.json").version,
    sdk: require("@restatedev/restate-sdk/package.json").version,
  };
}

async function until(what, ms, f) {
  const end = Date.now() + ms;
  let last;
  while (Date.now() < end) {
    try {
      if (await f()) return;
    } catch (err) {
      last = err;
    }
    await sleep(100);
  }
  throw new Error(`Restate: ${what} not ready within ${ms / 1000} s${last ? ` (${last.message})` : ""}`);
}

/** Runs the latency and concurrency workloads on Restate; every process it starts is stopped before it returns. */
export async function runRestate({ latencyCalls, warmup, callers, seconds, log }) {
  const dir = mkdtempSync(path.join(os.tmpdir(), "imm-restate-"));
  const [ingress, admin, node, svc] = [
    await freePort(),
    await freePort(),
    await freePort(),
    await freePort(),
  ];
  const server = start("restate-server", restateServerBinary(), ["--base-dir", dir, "--no-logo"], {
    env: {
      ...process.env,
      RESTATE_INGRESS__BIND_ADDRESS: `127.0.0.1:${ingress}`,
      RESTATE_ADMIN__BIND_ADDRESS: `127.0.0.1:${admin}`,
      RESTATE_BIND_ADDRESS: `127.0.0.1:${node}`,
      RESTATE_ADVERTISED_ADDRESS: `http://127.0.0.1:${node}/`,
      RESTATE_LISTEN_MODE: "tcp",
      RESTATE_DISABLE_TELEMETRY: "true",
      RESTATE_LOG_FILTER: "warn",
    },
  });
  const service = start("restate-counter", process.execPath, [
    path.join(here, "counter-service.mjs"),
    String(svc),
  ]);
  try {
    await service.waitFor(/^LISTENING/, 30_000, "LISTENING");
    await until("admin API", 60_000, async () => (await fetch(`http://127.0.0.1:${admin}/health`)).ok);
    const reg = await fetch(`http://127.0.0.1:${admin}/deployments`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ uri: `http://127.0.0.1:${svc}` }),
    });
    if (!reg.ok)
      throw new Error(`Restate: registering the counter failed: ${reg.status} ${await reg.text()}`);
    const base = `http://127.0.0.1:${ingress}/Counter`;
    // Each caller has its own key: Restate runs different keys in parallel and one key's calls one at a time,
    // so this is the favourable layout for Restate (Immortal's callers all update the one instance B).
    const op = async (caller) => {
      const res = await fetch(`${base}/k${caller}/add`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: "1",
      });
      if (!res.ok) throw new Error(`Restate call failed: ${res.status} ${await res.text()}`);
      await res.arrayBuffer();
    };
    await until("ingress", 60_000, async () => {
      await op(0);
      return true;
    });
    log(`restate: latency, ${latencyCalls} sequential calls`);
    const lat = await latency(op, { warmup, n: latencyCalls, deadlineMs: 120_000 });
    const conc = [];
    for (const c of callers) {
      log(`restate: ${c} concurrent callers`);
      conc.push(await concurrency(op, { callers: c, seconds }));
    }
    return { versions: restateVersions(), latency: lat, concurrency: conc };
  } finally {
    await service.kill();
    await server.kill("SIGTERM");
    rmSync(dir, { recursive: true, force: true });
  }
}
