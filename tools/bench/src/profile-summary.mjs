// Summarizes V8 CPU profiles (node --cpu-prof, or `pnpm bench:system --profile DIR`): per process, the busy
// share of the wall clock and the functions with the most self time.
//
//   node tools/bench/src/profile-summary.mjs DIR|FILE... [--top N]
import { readdirSync, readFileSync, statSync } from "node:fs";
import path from "node:path";

const args = process.argv.slice(2);
const topAt = args.indexOf("--top");
const top = topAt >= 0 ? Number(args[topAt + 1]) : 15;
const inputs = args.filter((_a, i) => topAt < 0 || (i !== topAt && i !== topAt + 1));
const files = inputs.flatMap((p) =>
  statSync(p).isDirectory()
    ? readdirSync(p)
        .filter((f) => f.endsWith(".cpuprofile"))
        .map((f) => path.join(p, f))
    : [p],
);

export function summarizeProfile(profile) {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const self = new Map();
  let total = 0;
  let idle = 0;
  for (let i = 0; i < profile.samples.length; i++) {
    const dt = profile.timeDeltas[i] ?? 0;
    const node = byId.get(profile.samples[i]);
    total += dt;
    const f = node.callFrame;
    if (f.functionName === "(idle)" || f.functionName === "(program)") {
      if (f.functionName === "(idle)") idle += dt;
    }
    const where = f.url
      ? `${f.url.replace(/^.*\/(packages|apps|tools|node_modules)\//, "$1/")}:${f.lineNumber + 1}`
      : "";
    const key = `${f.functionName || "(anonymous)"} ${where}`.trim();
    self.set(key, (self.get(key) ?? 0) + dt);
  }
  const rows = [...self.entries()].sort((a, b) => b[1] - a[1]);
  return { totalMs: total / 1000, idleMs: idle / 1000, rows: rows.map(([k, us]) => [k, us / 1000]) };
}

for (const file of files) {
  const s = summarizeProfile(JSON.parse(readFileSync(file, "utf8")));
  const busy = s.totalMs - s.idleMs;
  console.log(
    `\n## ${path.basename(file)}: ${(s.totalMs / 1000).toFixed(2)} s profiled, busy ${(busy / 1000).toFixed(2)} s (${((100 * busy) / s.totalMs).toFixed(0)} %)`,
  );
  for (const [k, ms] of s.rows.filter(([k]) => !k.startsWith("(idle)")).slice(0, top)) {
    console.log(`${((100 * ms) / busy).toFixed(1).padStart(5)} %  ${ms.toFixed(0).padStart(6)} ms  ${k}`);
  }
}
