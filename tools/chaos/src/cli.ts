#!/usr/bin/env node
// `pnpm chaos`: the chaos run from the command line. Prints the schedule as it goes, then the figures; exits 1
// on any violation (with the seed and the command that reproduces the schedule), 2 on a bad argument.
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { type AppName, type ChaosOptions, runChaos } from "./chaos.js";

class UsageError extends Error {
  override readonly name = "UsageError";
}

const USAGE = `usage: pnpm chaos [--app pti|bank|both] [--duration 60s] [--seed N] [--kills N] [options]

  --app <pti|bank|both>   workload (default both: PTI and bank at once, kills spread over both)
  --duration <time>       stop killing after this long: 90, 90s, 15m, 1h (default 60s)
  --kills <n>             stop killing after n kills (with no --duration: run until then)
  --seed <n>              seed of the kill schedule (default: from the clock, printed)
  --gap <min-max>         ms between kills (default 100-1500)
  --down <ms>             a killed process restarts after 50 + [0, ms) ms (default 500)
  --lts <MB>              log trigger size the instances register with: a checkpoint per MB (default 1)
  --pti-rounds <n>        PTI rounds per cycle (default 4)
  --pti-bytes <n>         PTI bytes per round (default 2097152)
  --pti-max-size <n>      PTI first round's message size, halving (default 8192)
  --pti-clients <n>       PTI clients sending to the one server (default 1)
  --accounts <n>          bank accounts (default 30)
  --branches <n>          bank branch instances (default 3)
  --transfers <n>         bank transfers per cycle (default 1500)
  --rate <n>              bank transfers per second (default 150: the stream lasts ~10 s)
  --finish-timeout <time> how long a cycle may take to finish after the last kill (default 180s)
  --dir <dir>             working folder (default: a fresh one under the OS temp dir)
  --keep                  keep the folders of cycles that passed
  --quiet                 do not print every kill`;

function duration(s: string, what: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(s.trim());
  if (m === null) throw new UsageError(`${what}: expected a duration like 90, 90s, 15m or 1h, got "${s}"`);
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[m[2] ?? "s"]!;
  return Number(m[1]) * unit;
}

function int(s: string | undefined, dflt: number, what: string, min = 0): number {
  if (s === undefined) return dflt;
  const n = Number(s);
  if (!Number.isSafeInteger(n) || n < min)
    throw new UsageError(`${what}: expected an integer ≥ ${min}, got "${s}"`);
  return n;
}

export function parse(argv: string[]): { options: ChaosOptions; command: string } {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    options: {
      app: { type: "string", default: "both" },
      duration: { type: "string" },
      kills: { type: "string" },
      seed: { type: "string" },
      gap: { type: "string", default: "100-1500" },
      down: { type: "string", default: "500" },
      lts: { type: "string", default: "1" },
      "pti-rounds": { type: "string" },
      "pti-bytes": { type: "string" },
      "pti-max-size": { type: "string" },
      "pti-clients": { type: "string" },
      accounts: { type: "string" },
      branches: { type: "string" },
      transfers: { type: "string" },
      rate: { type: "string" },
      "finish-timeout": { type: "string", default: "180s" },
      dir: { type: "string" },
      keep: { type: "boolean", default: false },
      quiet: { type: "boolean", default: false },
      help: { type: "boolean", short: "h", default: false },
    },
  });
  if (values.help) throw new UsageError(USAGE);
  const apps: AppName[] =
    values.app === "both"
      ? ["pti", "bank"]
      : values.app === "pti" || values.app === "bank"
        ? [values.app]
        : [];
  if (apps.length === 0) throw new UsageError(`--app: expected pti, bank or both, got "${values.app}"`);
  const maxKills = values.kills === undefined ? undefined : int(values.kills, 0, "--kills", 1);
  const durationMs =
    values.duration !== undefined
      ? duration(values.duration, "--duration")
      : maxKills !== undefined
        ? Number.POSITIVE_INFINITY
        : 60_000;
  const seed = int(values.seed, Date.now() % 1_000_000, "--seed");
  const gap = /^(\d+)-(\d+)$/.exec(values.gap);
  if (gap === null || Number(gap[1]) > Number(gap[2]))
    throw new UsageError(`--gap: expected <min>-<max> in ms, got "${values.gap}"`);
  const options: ChaosOptions = {
    apps,
    seed,
    durationMs,
    ...(maxKills === undefined ? {} : { maxKills }),
    minGapMs: Number(gap[1]),
    maxGapMs: Number(gap[2]),
    maxDownMs: int(values.down, 500, "--down"),
    logTriggerSizeMB: int(values.lts, 1, "--lts", 1),
    root: values.dir ?? path.join(os.tmpdir(), `immortal-chaos-${seed}-${process.pid}`),
    keep: values.keep,
    printKills: !values.quiet,
    finishTimeoutMs: duration(values["finish-timeout"], "--finish-timeout"),
    pti: {
      rounds: int(values["pti-rounds"], 4, "--pti-rounds", 1),
      bytesPerRound: int(values["pti-bytes"], 2 * 1024 * 1024, "--pti-bytes", 16),
      maxSize: int(values["pti-max-size"], 8192, "--pti-max-size", 16),
      clients: int(values["pti-clients"], 1, "--pti-clients", 1),
      stepBytes: 64 * 1024,
    },
    bank: {
      accounts: int(values.accounts, 30, "--accounts", 2),
      branches: int(values.branches, 3, "--branches", 1),
      transfers: int(values.transfers, 1500, "--transfers", 1),
      rate: int(values.rate, 150, "--rate"),
    },
  };
  // The same schedule again: every option that shapes it, spelled out.
  const args = argv.filter((a) => a !== "--keep" && a !== "--quiet");
  const hasSeed = args.some((a) => a === "--seed" || a.startsWith("--seed="));
  const command = `pnpm chaos ${[...args, ...(hasSeed ? [] : ["--seed", String(seed)])].join(" ")}`;
  return { options, command };
}

async function main(): Promise<number> {
  let parsed: ReturnType<typeof parse>;
  try {
    parsed = parse(process.argv.slice(2));
  } catch (err) {
    const help = (err as Error).message === USAGE;
    (help ? process.stdout : process.stderr).write(`${(err as Error).message}\n`);
    return help ? 0 : 2;
  }
  const { options: o, command } = parsed;
  const say = (line: string) => process.stdout.write(`${line}\n`);
  say(`[chaos] seed ${o.seed}; reproduce the schedule with: ${command}`);
  say(
    `[chaos] ${o.apps.join(" + ")}; kills every ${o.minGapMs}-${o.maxGapMs} ms, restart after 50-${50 + o.maxDownMs} ms; ` +
      `stop after ${Number.isFinite(o.durationMs) ? `${o.durationMs / 1000} s` : "no time limit"}${o.maxKills === undefined ? "" : ` or ${o.maxKills} kills`}`,
  );
  const r = await runChaos(o, say);
  const ok = r.violations.length === 0;
  say("");
  say(`chaos: ${ok ? "PASS, no violation" : `FAIL, ${r.violations.length} violation(s)`}`);
  say(`  duration   ${(r.durationMs / 1000).toFixed(1)} s, ${r.cycles} cycle(s)`);
  say(
    `  kills      ${r.kills} (coordinator ${r.killsByKind.coordinator ?? 0}, binding ${r.killsByKind.binding ?? 0}; ` +
      `${Object.entries(r.killsByApp)
        .map(([a, n]) => `${a} ${n}`)
        .join(
          ", ",
        )}${o.apps.includes("bank") ? `; ${r.killsDuringTransfers} during bank transfer streams` : ""}); ` +
      `${r.skipped} draws found their process already down`,
  );
  if (o.apps.includes("pti"))
    say(
      `  PTI        ${r.ptiMessages} messages, ${r.ptiBytes} bytes checked: exact counts, per-client call order, no duplicate, no gap`,
    );
  if (o.apps.includes("bank"))
    say(
      `  bank       ${r.bankTransfers} of ${r.bankRequested} transfers logged (an impulse not yet logged when its sender dies is lost, by design), ${r.bankAccepted} accepted; checked: total constant, every accepted transfer debited and credited exactly once`,
    );
  say(`  seed       ${o.seed}`);
  if (!ok) {
    for (const v of r.violations) say(`VIOLATION: ${v}`);
    say(`  data       ${r.failedDir ?? o.root} (process output in out/)`);
    say(`  reproduce  ${command}`);
  }
  return ok ? 0 : 1;
}

// Ctrl-C: exit, which SIGKILLs every child (see cluster.ts), leaving the folder for inspection.
for (const sig of ["SIGINT", "SIGTERM"] as const) process.once(sig, () => process.exit(130));
process.exitCode = await main();
