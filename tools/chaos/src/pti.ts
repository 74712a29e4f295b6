// The PTI workload: a server and one or more clients (apps/pti) on real processes, and the checks of a finished
// run: exact byte and message counts per client, every call number once and in order (no duplicate, no gap),
// the per-round figures, and the `Bytes received: N` / `DONE` lines printed at most once and right.
import type { PtiStatus } from "../../../apps/pti/src/main.js";
import { APPS, Cluster } from "./cluster.js";

export interface PtiConfig {
  readonly rounds: number;
  readonly bytesPerRound: number;
  /** First round's message size (halving each round, floor 16 B). */
  readonly maxSize: number;
  /** Every round uses this message size. */
  readonly fixedSize?: number;
  /** Random sizes in [16, maxSize] from this seed (each round still exactly `bytesPerRound`). */
  readonly randomSeed?: number;
  /** Number of clients sending to the one server. */
  readonly clients?: number;
  /** Bytes a client sends per continuation step. */
  readonly stepBytes?: number;
  /** MB of padding in the server's state (large checkpoints). */
  readonly statePaddingMb?: number;
  readonly echo?: boolean;
}

export const MIN_SIZE = 16;

/** The server's `status` as printed in the `PTI {...}` line (the app's own type; erased at build time). */
export type PtiReport = PtiStatus;

export function clientNames(c: PtiConfig): string[] {
  const n = c.clients ?? 1;
  return n > 1 ? Array.from({ length: n }, (_, i) => `client-${i}`) : ["client"];
}

export function ptiEnv(c: PtiConfig): Record<string, string> {
  const env: Record<string, string> = {
    PTI_ROUNDS: String(c.rounds),
    PTI_BYTES_PER_ROUND: String(c.bytesPerRound),
    PTI_MAX_SIZE: String(c.maxSize),
    PTI_CLIENTS: String(c.clients ?? 1),
    PTI_REPORT: "1",
    PTI_ECHO: c.echo === true ? "1" : "",
    PTI_FIXED_SIZE: c.fixedSize === undefined ? "" : String(c.fixedSize),
    PTI_RANDOM_SEED: c.randomSeed === undefined ? "" : String(c.randomSeed),
    PTI_STATE_PADDING_MB: String(c.statePaddingMb ?? 0),
  };
  if (c.stepBytes !== undefined) env.PTI_STEP_BYTES = String(c.stepBytes);
  return env;
}

/** Message size of a round with fixed sizes (as apps/pti computes it). */
export function roundSize(c: PtiConfig, round: number): number {
  if (c.fixedSize !== undefined) return Math.max(MIN_SIZE, c.fixedSize);
  return Math.max(MIN_SIZE, Math.floor(c.maxSize / 2 ** round));
}

/** What one client sends: per round (messages, bytes), when sizes are not random. */
export function expectedRounds(c: PtiConfig): Array<{ size: number; messages: number; bytes: number }> {
  return Array.from({ length: c.rounds }, (_, r) => {
    const size = roundSize(c, r);
    const messages = Math.max(1, Math.floor(c.bytesPerRound / size));
    return { size, messages, bytes: messages * size };
  });
}

/** Bytes one client sends in the whole run. */
export function expectedBytesPerClient(c: PtiConfig): number {
  if (c.randomSeed !== undefined) return c.rounds * c.bytesPerRound;
  return expectedRounds(c).reduce((a, r) => a + r.bytes, 0);
}

const REPORT = "PTI {";

/** Every `PTI {...}` line in `lines`. */
export function reports(lines: readonly string[]): PtiReport[] {
  return lines.filter((l) => l.startsWith(REPORT)).map((l) => JSON.parse(l.slice(4)) as PtiReport);
}

/**
 * The violations of PTI's invariants in a finished run: `reports` are the server's `PTI` lines (each must be the
 * complete, exact figures), `serverLines` its whole output (live-only lines must not repeat).
 */
export function checkPti(
  c: PtiConfig,
  serverReports: readonly PtiReport[],
  serverLines: readonly string[],
): string[] {
  const v: string[] = [];
  if (serverReports.length === 0) v.push("the server never reported its figures (no PTI line)");
  const perClientBytes = expectedBytesPerClient(c);
  const rounds = c.randomSeed === undefined ? expectedRounds(c) : undefined;
  const perClientMessages = rounds?.reduce((a, r) => a + r.messages, 0);
  const names = clientNames(c);
  for (const [k, r] of serverReports.entries()) {
    const at = `PTI report ${k + 1}`;
    if (!r.done) v.push(`${at}: not done`);
    if (r.duplicates !== 0) v.push(`${at}: ${r.duplicates} duplicate call numbers`);
    if (r.gaps !== 0) v.push(`${at}: ${r.gaps} missing call numbers (gaps)`);
    if (r.bytes !== perClientBytes * names.length)
      v.push(`${at}: ${r.bytes} bytes received, expected ${perClientBytes * names.length}`);
    if (Object.keys(r.clients).sort().join(",") !== [...names].sort().join(","))
      v.push(`${at}: heard from clients ${Object.keys(r.clients).join(",")}, expected ${names.join(",")}`);
    for (const name of names) {
      const x = r.clients[name];
      if (x === undefined) continue;
      if (x.bytes !== perClientBytes)
        v.push(`${at}: ${name} sent ${x.bytes} bytes, expected ${perClientBytes}`);
      if (x.duplicates !== 0 || x.gaps !== 0)
        v.push(`${at}: ${name}: ${x.duplicates} duplicates, ${x.gaps} gaps`);
      if (x.lastCall !== x.received)
        v.push(`${at}: ${name}: last call ${x.lastCall} but ${x.received} received`);
      if (perClientMessages !== undefined && x.received !== perClientMessages)
        v.push(`${at}: ${name}: ${x.received} messages, expected ${perClientMessages}`);
    }
    if (r.rounds.length !== c.rounds) v.push(`${at}: ${r.rounds.length} rounds, expected ${c.rounds}`);
    if (rounds !== undefined)
      for (const [i, want] of rounds.entries()) {
        const got = r.rounds[i];
        const n = names.length;
        if (got === undefined || got.messages !== want.messages * n || got.bytes !== want.bytes * n)
          v.push(
            `${at}: round ${i}: ${JSON.stringify(got)}, expected ${want.messages * n} messages, ${want.bytes * n} bytes`,
          );
      }
    const padding = (c.statePaddingMb ?? 0) * 1024 * 1024;
    if (r.paddingBytes !== padding) v.push(`${at}: state padding ${r.paddingBytes} B, expected ${padding}`);
  }
  // Handlers print only when they run live, so each of these lines appears at most once, whatever was killed.
  const total = perClientBytes * names.length;
  const bytesLines = serverLines.filter((l) => l.startsWith("[server] Bytes received: "));
  if (bytesLines.length > 1) v.push(`"Bytes received" printed ${bytesLines.length} times`);
  for (const l of bytesLines) if (l !== `[server] Bytes received: ${total}`) v.push(`wrong line: ${l}`);
  const doneLines = serverLines.filter((l) => l.startsWith("[server] DONE {"));
  if (doneLines.length > 1) v.push(`DONE printed ${doneLines.length} times`);
  for (const l of doneLines) {
    const d = JSON.parse(l.slice(l.indexOf("{"))) as { bytes: number; duplicates: number; gaps: number };
    if (d.bytes !== total || d.duplicates !== 0 || d.gaps !== 0) v.push(`wrong line: ${l}`);
  }
  for (let r = 0; r < c.rounds; r++) {
    const n = serverLines.filter((l) => l.startsWith(`[server] Round ${r}: `)).length;
    if (n > 1) v.push(`the line of round ${r} printed ${n} times`);
  }
  return v;
}

/** A PTI cluster: the server and its clients, each with its own coordinator and binding process. */
export async function ptiCluster(
  root: string,
  c: PtiConfig,
  extra: { logTriggerSizeMB?: number; logDir?: string; noRestart?: boolean } = {},
): Promise<Cluster> {
  return Cluster.create({
    root,
    entry: APPS.pti,
    instances: ["server", ...clientNames(c)],
    env: ptiEnv(c),
    ...extra,
  });
}

/** The server's `PTI` lines and its figures, once it has printed one in its current run. */
export function serverReports(cluster: Cluster): PtiReport[] {
  return reports(cluster.get("server").binding.lines);
}
