// Real coordinators for the tests: in-process (`startCoordinator`) or as a separate process (its bin), each with
// its own temporary registry and log folder.
import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import {
  type Coordinator,
  createRegistration,
  FolderRegistry,
  startCoordinator,
} from "@immortal/coordinator";

// The coordinator reads its log level when it starts; keep test output quiet.
process.env.IMMORTAL_LOG_LEVEL ??= "warn";

/** `n` distinct free TCP ports on the loopback interface (held open together so none repeats). */
export async function freePorts(n: number): Promise<number[]> {
  const servers = Array.from({ length: n }, () => net.createServer());
  const ports: number[] = [];
  for (const s of servers) {
    s.listen(0, "127.0.0.1");
    await once(s, "listening");
    ports.push((s.address() as net.AddressInfo).port);
  }
  await Promise.all(servers.map((s) => new Promise<void>((r) => s.close(() => r()))));
  return ports;
}

export interface IcFolder {
  readonly name: string;
  readonly root: string;
  readonly registryDir: string;
  readonly logDir: string;
  readonly receivePort: number;
  readonly sendPort: number;
  readonly icPort: number;
}

/** Registers `name` in a fresh temporary registry with free ports. */
export async function registerInstance(name: string, logTriggerSizeMB = 1024): Promise<IcFolder> {
  const root = mkdtempSync(path.join(os.tmpdir(), "imm-client-"));
  const [receivePort, sendPort, icPort] = (await freePorts(3)) as [number, number, number];
  const registryDir = path.join(root, "registry");
  const logDir = path.join(root, "logs");
  const registry = FolderRegistry.open({ dir: registryDir });
  await registry.put(
    createRegistration({ instanceName: name, receivePort, sendPort, icPort, logDir, logTriggerSizeMB }),
  );
  return { name, root, registryDir, logDir, receivePort, sendPort, icPort };
}

export async function startInProcess(f: IcFolder, logTriggerSizeMB = 1024): Promise<Coordinator> {
  return startCoordinator({
    instanceName: f.name,
    registry: FolderRegistry.open({ dir: f.registryDir }),
    icPort: f.icPort,
    receivePort: f.receivePort,
    sendPort: f.sendPort,
    logDir: f.logDir,
    currentVersion: 0,
    logTriggerSizeMB,
    out: () => {},
  });
}

const require = createRequire(import.meta.url);
/** The coordinator's `ImmortalCoordinator` executable (AMBROSIA's name and options). */
export const IC_BIN = path.join(
  path.dirname(require.resolve("@immortal/coordinator/package.json")),
  "bin/ImmortalCoordinator.mjs",
);

/** Starts the coordinator as its own process; resolves once it printed `Ready`. */
export async function startProcess(f: IcFolder): Promise<ChildProcess> {
  const p = spawn(process.execPath, [IC_BIN, "-i", f.name], {
    env: { ...process.env, IMMORTAL_HOME: f.registryDir, IMMORTAL_LOG_LEVEL: "warn" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  let err = "";
  p.stderr!.on("data", (d: Buffer) => {
    err = (err + d.toString()).slice(-10_000);
  });
  await new Promise<void>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`coordinator did not print Ready: ${out} ${err}`)), 20_000);
    p.stdout!.on("data", (d: Buffer) => {
      out += d.toString();
      if (out.includes("Ready")) {
        clearTimeout(t);
        resolve();
      }
    });
    p.once("exit", (code) => {
      clearTimeout(t);
      reject(new Error(`coordinator exited with ${code}: ${out} ${err}`));
    });
  });
  return p;
}

export async function killProcess(p: ChildProcess): Promise<void> {
  if (p.exitCode !== null || p.signalCode !== null) return;
  const exited = once(p, "exit");
  p.kill("SIGKILL");
  await exited;
}

export function cleanup(f: IcFolder): void {
  rmSync(f.root, { recursive: true, force: true });
}
