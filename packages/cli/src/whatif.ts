import path from "node:path";
import { type Registry, startWhatIfReplay, type WhatIfReplayResult } from "@immortal/coordinator";
import {
  type AnyImmortalType,
  type Codec,
  type DispatchObserver,
  Immortal,
  type InputPosition,
  RESULT_METHOD_ID,
  UpgradeError,
  versionOf,
} from "@immortal/sdk";
import { loadApp } from "./dev.js";

export interface WhatIfOptions {
  readonly entry: string;
  readonly instance: string;
  readonly checkpoint?: number;
  readonly registry: Registry;
  readonly cwd: string;
  readonly codec: Codec;
  readonly out: (line: string) => void;
}

interface SentRpc {
  destination: string;
  methodId: number;
  rpcType: number;
  args: Uint8Array;
}

/** What one replay produced, per input (`sequence:index`): its method, the RPCs it sent, whether it threw. */
class Recording implements DispatchObserver {
  readonly inputs = new Map<string, { at: InputPosition; method: string }>();
  readonly sends = new Map<string, SentRpc[]>();
  readonly errors = new Map<string, { method: string; error: { name: string; message: string } }>();

  onInput(at: InputPosition, method: string): void {
    this.inputs.set(key(at), { at, method });
  }
  onSend(at: InputPosition, rpc: SentRpc): void {
    const k = key(at);
    const list = this.sends.get(k) ?? [];
    if (list.length === 0) this.sends.set(k, list);
    list.push({ ...rpc, args: Buffer.from(rpc.args) });
  }
  onHandlerError(at: InputPosition, method: string, error: { name: string; message: string }): void {
    this.errors.set(key(at), { method, error: { name: error.name, message: error.message } });
  }
}

function key(at: InputPosition): string {
  return `${at.sequence}:${at.index}`;
}

function sameRpc(a: SentRpc, b: SentRpc): boolean {
  return (
    a.destination === b.destination &&
    a.methodId === b.methodId &&
    a.rpcType === b.rpcType &&
    Buffer.compare(Buffer.from(a.args), Buffer.from(b.args)) === 0
  );
}

function json(v: unknown): string {
  const text = JSON.stringify(v, (_k, x: unknown) => (typeof x === "bigint" ? `${x}n` : x));
  return text === undefined ? String(v) : text.length > 200 ? `${text.slice(0, 200)}…` : text;
}

/** `dest.method(args)` (or `dest ← result(value)`) from the SDK envelope inside the RPC's bytes. */
function describe(rpc: SentRpc, types: readonly AnyImmortalType[], codec: Codec): string {
  const dest = rpc.destination === "" ? "self" : rpc.destination;
  let env: Record<string, unknown> = {};
  try {
    const decoded = codec.decode(rpc.args);
    if (typeof decoded === "object" && decoded !== null) env = decoded as Record<string, unknown>;
  } catch {
    // Not an SDK envelope: shown by method only.
  }
  if (rpc.methodId === RESULT_METHOD_ID) {
    return `${dest} ← result of ${String(env.m)}: ${env.ok ? json(env.v) : `error ${json(env.e)}`}`;
  }
  const name =
    (typeof env.m === "string" ? env.m : undefined) ??
    types.map((t) => t.methodNames.get(rpc.methodId)).find((n) => n !== undefined) ??
    `#${rpc.methodId}`;
  return `${dest}.${name}(${json(env.a ?? []).slice(1, -1)})`;
}

async function replayOnce(
  o: WhatIfOptions,
  type: AnyImmortalType,
  dir: string,
  currentVersion: number,
  testingUpgrade: boolean,
): Promise<{ result: WhatIfReplayResult; rec: Recording }> {
  const replay = await startWhatIfReplay({ dir, checkpoint: o.checkpoint, testingUpgrade });
  const rec = new Recording();
  const node = new Immortal({
    instanceName: o.instance,
    type: type as never,
    receivePort: replay.receivePort,
    sendPort: replay.sendPort,
    codec: o.codec,
    currentVersion,
    observer: rec,
    logSink: () => {},
  });
  try {
    const closed = node.closed.then((info) => {
      throw new Error(
        `version ${testingUpgrade ? type.version : currentVersion} stopped during the replay: ${info.error?.message ?? info.reason}`,
      );
    });
    // Closing the node below settles this too, after the race: not an error then.
    closed.catch(() => undefined);
    await node.start();
    const result = await Promise.race([replay.done, closed]);
    return { result, rec };
  } finally {
    await node.close().catch(() => undefined);
    await replay.close();
  }
}

/**
 * `immortal whatif <entry> --instance NAME [--checkpoint K]`: replays the instance's production log (its
 * registered current version's folder), read-only, twice — on the version that wrote it, and on the app's
 * newer definition after its migration (UpgradeService) — and reports every input where the new version threw
 * (and the old one did not) or sent different RPCs. Comparing per input is exact because the SDK's observer
 * knows which input each RPC came from. Exit code 1 when there are divergences.
 */
export async function runWhatIf(o: WhatIfOptions): Promise<number> {
  const app = await loadApp(o.entry, o.cwd);
  const type = app.instances[o.instance];
  if (type === undefined) {
    throw new Error(
      `the app has no instance "${o.instance}" (it has ${Object.keys(app.instances).join(", ")})`,
    );
  }
  const reg = await o.registry.require(o.instance);
  const from = reg.currentVersion;
  if (type.version <= from) {
    throw new UpgradeError(
      `${o.instance} runs version ${from} and the app defines ${type.typeName} version ${type.version}: ` +
        "nothing to test (declare the new version with defineImmortal({ version, upgradeFrom }))",
    );
  }
  const old = versionOf(type, from);
  const dir = path.join(reg.logDir, `${o.instance}_${from}`);
  o.out(`[whatif] ${o.instance}: replaying ${dir} on version ${from}, then on version ${type.version}`);
  const a = await replayOnce(o, type, dir, from, false);
  const b = await replayOnce(o, type, dir, from, true);
  const types = [type, old];
  const keys = [...new Set([...a.rec.inputs.keys(), ...b.rec.inputs.keys()])].sort((x, y) => {
    const [xs, xi] = x.split(":").map(Number) as [number, number];
    const [ys, yi] = y.split(":").map(Number) as [number, number];
    return xs - ys || xi - yi;
  });
  let divergences = 0;
  for (const k of keys) {
    const input = b.rec.inputs.get(k) ?? a.rec.inputs.get(k)!;
    const where = `input seq ${input.at.sequence}${input.at.index > 0 ? `.${input.at.index}` : ""} (${input.method})`;
    const reasons: string[] = [];
    const errB = b.rec.errors.get(k);
    const errA = a.rec.errors.get(k);
    if (errB !== undefined && errA === undefined) {
      reasons.push(`version ${type.version} threw ${errB.error.name}: ${errB.error.message}`);
    }
    const sentA = a.rec.sends.get(k) ?? [];
    const sentB = b.rec.sends.get(k) ?? [];
    const n = Math.max(sentA.length, sentB.length);
    for (let i = 0; i < n; i++) {
      const x = sentA[i];
      const y = sentB[i];
      if (x !== undefined && y !== undefined && sameRpc(x, y)) continue;
      reasons.push(
        `output ${i + 1}: version ${from} sent ${x === undefined ? "nothing" : describe(x, types, o.codec)}, ` +
          `version ${type.version} sent ${y === undefined ? "nothing" : describe(y, types, o.codec)}`,
      );
    }
    if (reasons.length === 0) continue;
    divergences++;
    o.out(`[whatif] DIVERGENCE at ${where}:`);
    for (const r of reasons) o.out(`[whatif]   ${r}`);
  }
  const r = b.result;
  o.out(
    `[whatif] ${o.instance} ${from} → ${type.version}: checkpoint ${r.checkpoint}, ${r.replayedRecords} records ` +
      `(seq ${r.firstSequence}–${r.lastSequence}), ${keys.length} inputs: ` +
      `${divergences === 0 ? "no divergences" : `${divergences} divergence${divergences === 1 ? "" : "s"}`}`,
  );
  return divergences === 0 ? 0 : 1;
}
