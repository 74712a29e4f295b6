// In-process coordinators for tests: the same code as the executable, started with a temp registry and log
// folder, its structured log captured as lines so that tests can assert on what it reports.
import { mkdtempSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { Writable } from "node:stream";
import pino, { type Logger } from "pino";
import { type Coordinator, createRegistration, FolderRegistry, startCoordinator } from "../../src/index.js";
import { ports } from "./harness.js";

export interface TestEnv {
  root: string;
  registry: FolderRegistry;
  logDir: string;
  p: ReturnType<typeof ports>;
}

/** A temp folder with a registry holding `name` (fresh ports, logs under the folder). */
export async function newEnv(name: string): Promise<TestEnv> {
  const root = mkdtempSync(path.join(os.tmpdir(), "imm-test-"));
  const registry = FolderRegistry.open({ dir: path.join(root, "reg") });
  const logDir = path.join(root, "logs");
  const p = ports();
  await registry.put(createRegistration({ instanceName: name, ...p, logDir }));
  return { root, registry, logDir, p };
}

/** A pino logger whose JSON lines land in `lines`. */
export function captureLogger(lines: string[]): Logger {
  return pino(
    { level: "info" },
    new Writable({
      write(chunk, _enc, cb) {
        lines.push(...String(chunk).trim().split("\n"));
        cb();
      },
    }),
  );
}

export interface TestCoordinatorOptions {
  logLines?: string[];
  out?: string[];
  onFatal?: (err: Error) => void;
  logTriggerSizeMB?: number;
  maxOutputBytes?: number;
  maxBindingBufferBytes?: number;
}

export function startTestCoordinator(
  e: TestEnv,
  name: string,
  o: TestCoordinatorOptions = {},
): Promise<Coordinator> {
  return startCoordinator({
    instanceName: name,
    registry: e.registry,
    icPort: e.p.icPort,
    receivePort: e.p.receivePort,
    sendPort: e.p.sendPort,
    logDir: e.logDir,
    currentVersion: 0,
    logTriggerSizeMB: o.logTriggerSizeMB ?? 1024,
    out: (line) => o.out?.push(line),
    logger: captureLogger(o.logLines ?? []),
    onFatal: o.onFatal,
    maxOutputBytes: o.maxOutputBytes,
    maxBindingBufferBytes: o.maxBindingBufferBytes,
  });
}
