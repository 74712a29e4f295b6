import type { AnyImmortalType, Handler, ImmortalType } from "./define.js";
import type { Immortal } from "./runtime.js";

/**
 * An application: named instances and their types, and an optional `main` that runs (outside any handler) once
 * every instance hosted by the process is primary. `immortal dev <entry>` hosts them all in one process with
 * in-process coordinators; `immortal run <entry> --instance <name>` hosts one against its own coordinator.
 */
export interface AppDefinition {
  readonly instances: Readonly<Record<string, AnyImmortalType>>;
  readonly main?: (app: RunningApp) => void | Promise<void>;
}

/** What `main` gets: the instances this process hosts. */
export interface RunningApp {
  /** A hosted instance by name (throws if this process does not host it). */
  instance<S, H extends Record<string, Handler<S>>>(name: string, type: ImmortalType<S, H>): Immortal<S, H>;
  /** Names of the instances this process hosts. */
  readonly hosted: readonly string[];
}

export function defineApp(def: AppDefinition): AppDefinition {
  for (const [name, type] of Object.entries(def.instances)) {
    if (typeof type?.typeName !== "string")
      throw new TypeError(`instance "${name}" has no Immortal type (use defineImmortal)`);
  }
  return def;
}
