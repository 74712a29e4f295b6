import { mkdir } from "node:fs/promises";
import path from "node:path";
import { pathToFileURL } from "node:url";
import {
  type Coordinator,
  createRegistration,
  FolderRegistry,
  type InstanceRegistration,
  type Registry,
  startCoordinator,
} from "@immortal/coordinator";
import {
  type AnyImmortalType,
  type AppDefinition,
  type Codec,
  Immortal,
  type RunningApp,
} from "@immortal/sdk";
import pino from "pino";
import { freePort } from "./ports.js";

/** Loads an app module: its default export must be `defineApp({...})`. */
export async function loadApp(entry: string, cwd: string): Promise<AppDefinition> {
  const file = path.resolve(cwd, entry);
  const mod = (await import(pathToFileURL(file).href)) as { default?: AppDefinition };
  const app = mod.default;
  if (app === undefined || typeof app !== "object" || typeof app.instances !== "object") {
    throw new Error(`${file} has no default export made with defineApp({ instances: { … } })`);
  }
  return app;
}

/** The registration of `name`, created with free ports under `logDir` on the first run. */
async function ensureRegistered(
  registry: Registry,
  name: string,
  logDir: string,
  taken: Set<number>,
): Promise<InstanceRegistration> {
  const existing = await registry.get(name);
  if (existing !== undefined && existing.icPort !== undefined) return existing;
  return registry.put(
    createRegistration({
      instanceName: name,
      receivePort: await freePort(taken),
      sendPort: await freePort(taken),
      icPort: await freePort(taken),
      logDir,
    }),
  );
}

function runningApp(hosted: Map<string, Immortal<unknown, never>>): RunningApp {
  return {
    hosted: [...hosted.keys()],
    instance(name) {
      const i = hosted.get(name);
      if (i === undefined)
        throw new Error(
          `this process does not host an instance "${name}" (it hosts ${[...hosted.keys()].join(", ")})`,
        );
      return i as never;
    },
  };
}

export interface DevOptions {
  readonly entry: string;
  readonly dataDir: string;
  readonly cwd: string;
  readonly codec: Codec;
  readonly out: (line: string) => void;
}

/**
 * `immortal dev <entry>`: every instance of the app in this process, each with an in-process coordinator and
 * embedded storage under `dataDir`. Runs until SIGINT/SIGTERM; a second run recovers from the same data.
 */
export async function runDev(o: DevOptions): Promise<number> {
  const app = await loadApp(o.entry, o.cwd);
  const dataDir = path.resolve(o.cwd, o.dataDir);
  await mkdir(dataDir, { recursive: true });
  const registry = FolderRegistry.open({ dir: path.join(dataDir, "registry") });
  const logDir = path.join(dataDir, "logs");
  const logger = pino({ level: process.env.IMMORTAL_LOG_LEVEL ?? "warn" }, pino.destination(2));
  const taken = new Set<number>();
  const coordinators: Coordinator[] = [];
  const hosted = new Map<string, Immortal<unknown, never>>();
  const stop = async () => {
    for (const i of hosted.values()) await i.close().catch(() => undefined);
    for (const c of coordinators) await c.stop().catch(() => undefined);
  };
  try {
    for (const [name, type] of Object.entries(app.instances)) {
      const reg = await ensureRegistered(registry, name, logDir, taken);
      coordinators.push(
        await startCoordinator({
          instanceName: name,
          registry,
          icPort: reg.icPort ?? 0,
          receivePort: reg.receivePort,
          sendPort: reg.sendPort,
          logDir: reg.logDir,
          currentVersion: reg.currentVersion,
          upgradeVersion: reg.upgradeVersion,
          logTriggerSizeMB: reg.logTriggerSizeMB,
          out: () => {},
          logger: logger.child({ instance: name }),
        }),
      );
      const instance = new Immortal({
        instanceName: name,
        type: type as never,
        receivePort: reg.receivePort,
        sendPort: reg.sendPort,
        codec: o.codec,
        // The registration picks the version from the definition's upgradeFrom chain (live upgrade).
        currentVersion: reg.currentVersion,
        upgradeVersion: reg.upgradeVersion,
        // What handlers log is the app's output: stdout (the coordinators' diagnostics go to stderr).
        logSink: o.out,
      });
      hosted.set(name, instance as never);
    }
    await Promise.all([...hosted.values()].map((i) => i.start()));
    await Promise.all([...hosted.values()].map((i) => i.whenPrimary()));
    o.out(`[dev] ${[...hosted.keys()].join(", ")} running; data in ${dataDir}; Ctrl-C to stop`);
    await app.main?.(runningApp(hosted));
    const signal = await new Promise<string>((resolve) => {
      process.once("SIGINT", () => resolve("SIGINT"));
      process.once("SIGTERM", () => resolve("SIGTERM"));
      for (const i of hosted.values())
        void i.closed.then(
          (info) => info.reason !== "closed" && resolve(`instance ${i.name} stopped (${info.reason})`),
        );
    });
    o.out(`[dev] stopping: ${signal}`);
    await stop();
    return signal.startsWith("SIG") ? 0 : 1;
  } catch (err) {
    await stop();
    throw err;
  }
}

export interface RunOptions {
  readonly entry: string;
  readonly instance: string;
  /** Active/active: host this replica's binding (its registered ports); 0 is the instance itself. */
  readonly replicaNum?: number;
  readonly registry: Registry;
  readonly cwd: string;
  readonly codec: Codec;
  readonly out: (line: string) => void;
}

/** `immortal run <entry> --instance <name>`: one instance of the app, against its separately run coordinator. */
export async function runInstance(o: RunOptions): Promise<number> {
  const app = await loadApp(o.entry, o.cwd);
  const type: AnyImmortalType | undefined = app.instances[o.instance];
  if (type === undefined) {
    throw new Error(
      `the app has no instance "${o.instance}" (it has ${Object.keys(app.instances).join(", ")})`,
    );
  }
  const reg = await o.registry.require(o.instance);
  const r = o.replicaNum ?? 0;
  if (r !== 0 && !reg.replicas.includes(r)) {
    throw new Error(`replica ${r} of "${o.instance}" is not registered; add it with 'immortal add-replica'`);
  }
  const ports = r === 0 ? {} : (reg.replicaOverrides[String(r)] ?? {});
  const instance = new Immortal({
    instanceName: o.instance,
    type: type as never,
    receivePort: ports.receivePort ?? reg.receivePort,
    sendPort: ports.sendPort ?? reg.sendPort,
    codec: o.codec,
    currentVersion: reg.currentVersion,
    upgradeVersion: reg.upgradeVersion,
    logSink: o.out,
  });
  await instance.start();
  await instance.whenPrimary();
  o.out(`[run] ${o.instance} is primary`);
  await app.main?.(runningApp(new Map([[o.instance, instance as never]])));
  const info = await Promise.race([
    instance.closed,
    new Promise<{ reason: string }>((resolve) => {
      process.once("SIGINT", () => resolve({ reason: "SIGINT" }));
      process.once("SIGTERM", () => resolve({ reason: "SIGTERM" }));
    }),
  ]);
  await instance.close();
  if ("error" in info && info.error !== undefined)
    o.out(`[run] ${o.instance} stopped: ${info.error.message}`);
  return info.reason === "SIGINT" || info.reason === "SIGTERM" || info.reason === "closed" ? 0 : 1;
}
