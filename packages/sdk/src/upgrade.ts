import type { AnyImmortalType } from "./define.js";
import { UpgradeError } from "./errors.js";

/** The versions an app's definition carries, newest first: the type itself, then its `upgradeFrom` chain. */
export function versionsOf(type: AnyImmortalType): AnyImmortalType[] {
  const out: AnyImmortalType[] = [];
  for (let t: AnyImmortalType | undefined = type; t !== undefined; t = t.upgradeFrom?.immortal) out.push(t);
  return out;
}

/** The definition of `version` in `type`'s chain (a clear `UpgradeError` when the app has none). */
export function versionOf(type: AnyImmortalType, version: number): AnyImmortalType {
  const all = versionsOf(type);
  const found = all.find((t) => t.version === version);
  if (found === undefined) {
    throw new UpgradeError(
      `${type.typeName} has no definition of version ${version} (the app defines ${all
        .map((t) => t.version)
        .join(", ")}; declare it with defineImmortal({ version, upgradeFrom: { immortal, migrate } }))`,
    );
  }
  return found;
}

/** Migrates `state` from `from`'s version to `to`'s, through every version in between. */
export function migrateState(from: AnyImmortalType, to: AnyImmortalType, state: unknown): unknown {
  const steps: Array<(old: never) => unknown> = [];
  let t: AnyImmortalType | undefined = to;
  while (t !== undefined && t !== from) {
    if (t.upgradeFrom === undefined) break;
    steps.push(t.upgradeFrom.migrate);
    t = t.upgradeFrom.immortal;
  }
  if (t !== from) {
    throw new UpgradeError(
      `${to.typeName} version ${to.version} does not upgrade from version ${from.version} (no upgradeFrom chain between them)`,
    );
  }
  let s = state;
  for (const step of steps.reverse()) s = step(s as never);
  return s;
}

/**
 * Continuations (`ctx.call(...).onResult(handler)`) and durable timers pending at the upgrade name handlers of
 * the old version; the new version must have them too, or their results would have nowhere to go. Checked
 * before anything is switched, so a failed upgrade leaves the old version running and its log untouched.
 */
export function checkHandlersKept(
  to: AnyImmortalType,
  pending: Record<string, { handler?: string; destination: string; method: string }>,
  timers: Record<string, { handler: string }>,
): void {
  const missing: string[] = [];
  for (const p of Object.values(pending)) {
    if (p.handler !== undefined && !to.methodIds.has(p.handler))
      missing.push(`continuation "${p.handler}" of a pending call to ${p.destination}.${p.method}`);
  }
  for (const [name, t] of Object.entries(timers)) {
    if (!to.methodIds.has(t.handler)) missing.push(`handler "${t.handler}" of timer "${name}"`);
  }
  if (missing.length > 0) {
    throw new UpgradeError(
      `cannot upgrade ${to.typeName} to version ${to.version}: it has no ${missing.join(", no ")}; keep those ` +
        "handlers in the new version (they may forward to new ones)",
    );
  }
}
