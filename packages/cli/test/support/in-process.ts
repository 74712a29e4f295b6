// An in-process coordinator for one instance of a folder registry, silent, logging to `logDir` with no
// size-triggered checkpoints, its registration, and a silent SDK binding on its ports: the set-up of the cli
// tests that recover the same log several times.
import {
  type Coordinator,
  createRegistration,
  type FolderRegistry,
  startCoordinator,
} from "@immortal/coordinator";
import { type Codec, Immortal } from "@immortal/sdk";
import pino from "pino";

const silent = pino({ level: "silent" });

/** Registers `instanceName` with its receive and send ports at `basePort` and `basePort + 1`. */
export async function registerAt(
  registry: FolderRegistry,
  instanceName: string,
  basePort: number,
  logDir: string,
): Promise<void> {
  await registry.put(
    createRegistration({ instanceName, receivePort: basePort, sendPort: basePort + 1, logDir }),
  );
}

export async function inProcessCoordinator(
  registry: FolderRegistry,
  instanceName: string,
  logDir: string,
  extra: { strictDeterminism?: boolean; onFatal?: (e: Error) => void } = {},
): Promise<Coordinator> {
  const reg = await registry.require(instanceName);
  return startCoordinator({
    instanceName,
    registry,
    icPort: 0,
    receivePort: reg.receivePort,
    sendPort: reg.sendPort,
    logDir,
    currentVersion: 0,
    logTriggerSizeMB: 1024,
    out: () => {},
    logger: silent,
    ...(extra.strictDeterminism !== undefined ? { strictDeterminism: extra.strictDeterminism } : {}),
    ...(extra.onFatal !== undefined ? { onFatal: extra.onFatal } : {}),
  });
}

/** Starts a silent SDK binding of `type` for `instanceName` on its registered ports (not waiting for primary). */
export async function startBinding(
  registry: FolderRegistry,
  instanceName: string,
  type: unknown,
  codec: Codec,
): Promise<Immortal<unknown, never>> {
  const reg = await registry.require(instanceName);
  const i = new Immortal({
    instanceName,
    type: type as never,
    receivePort: reg.receivePort,
    sendPort: reg.sendPort,
    codec,
    logSink: () => {},
  });
  await i.start();
  return i as never;
}
