// A small cluster of real Immortals for the suite: each instance is registered in a folder registry, and its
// coordinator (`immortal coordinator`) and its binding (`immortal run`) are separate processes, the way a user
// deploys them. Logging is on and every commit is fdatasync'ed: nothing here is tuned down.
import { mkdirSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { createRegistration, FolderRegistry } from "@immortal/coordinator";
import { freePort, start } from "./procs.mjs";

const here = path.dirname(fileURLToPath(import.meta.url));
export const REPO = path.resolve(here, "../../..");
export const IMMORTAL = path.join(REPO, "packages/cli/bin/immortal.mjs");

export class Cluster {
  constructor(root) {
    this.root = root;
    this.regDir = path.join(root, "registry");
    this.logDir = path.join(root, "logs");
    mkdirSync(this.logDir, { recursive: true });
    this.registry = FolderRegistry.open({ dir: this.regDir });
    this.regs = new Map();
  }

  /** Registers `name` with free ports. `logTriggerSizeMB` large keeps checkpoints out of a measurement. */
  async register(name, { logTriggerSizeMB = 1024 } = {}) {
    const reg = createRegistration({
      instanceName: name,
      receivePort: await freePort(),
      sendPort: await freePort(),
      icPort: await freePort(),
      logDir: this.logDir,
      logTriggerSizeMB,
    });
    await this.registry.put(reg);
    this.regs.set(name, reg);
    return reg;
  }

  /** Starts `name`'s coordinator process and waits for `Ready`. Its log lines (pino JSON) go to stderr. */
  async coordinator(name, { logLevel = "warn", nodeArgs = [], env = {} } = {}) {
    const p = start(
      `${name}-ic`,
      process.execPath,
      [...nodeArgs, IMMORTAL, "--registry", this.regDir, "coordinator", "-i", name],
      { env: { ...process.env, IMMORTAL_LOG_LEVEL: logLevel, ...env } },
    );
    await p.waitFor(/^Ready$/, 30_000, "Ready");
    return p;
  }

  /** Starts the binding of `name` (`immortal run <entry> --instance name`) and waits until it is primary. */
  async binding(name, entry, { env = {}, nodeArgs = [], primaryTimeoutMs = 60_000 } = {}) {
    const p = start(
      `${name}-binding`,
      process.execPath,
      [...nodeArgs, IMMORTAL, "--registry", this.regDir, "run", entry, "--instance", name],
      { env: { ...process.env, ...env } },
    );
    p.startedAt = Date.now();
    p.primary = p.waitFor(/is primary$/, primaryTimeoutMs, "primary");
    return p;
  }
}
