// Markdown tables from a bench:system results file, for the READMEs.
//
//   node tools/bench/src/report.mjs [results.json]           print them (default: tools/bench/results/latest.json)
//   node tools/bench/src/report.mjs [results.json] --write   also replace the marked block in README.md and
//                                                            tools/bench/README.md (<!-- bench:system:begin/end -->)
import { readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const args = process.argv.slice(2);
const write = args.includes("--write");
const file = args.find((a) => a !== "--write") ?? path.join(here, "../results/latest.json");
const r = JSON.parse(readFileSync(file, "utf8"));
const MIB = 1024 * 1024;
const f = (n, d = 0) => n.toLocaleString("en-US", { maximumFractionDigits: d, minimumFractionDigits: d });
const out = [];
const table = (header, rows) => {
  out.push(`| ${header.join(" | ")} |`, `|${header.map(() => "---").join("|")}|`);
  for (const row of rows) out.push(`| ${row.join(" | ")} |`);
  out.push("");
};

const m = r.machine;
const b = r.baselines;
out.push(
  `Run of ${m.date.slice(0, 16).replace("T", " ")} UTC, commit \`${m.gitCommit?.slice(0, 10)}\`: ${m.cpu}, ${m.cores} cores, ${m.memoryGiB} GiB, Node ${m.node.slice(1)}, ${m.kernel}; load average at the start ${m.loadAverage.map((x) => x.toFixed(1)).join(" / ")}.`,
  "",
);
table(
  ["baseline, same run", "value"],
  [
    [
      "sequential write + fdatasync, 1 MiB writes",
      `${f(b.diskBytesPerSecond / 1e6)} MB/s at the start, ${f(b.diskBytesPerSecondAfter / 1e6)} MB/s at the end`,
    ],
    ["lone 128 B write + fdatasync", `${f(b.fdatasyncMs, 3)} ms`],
    ["loopback TCP", `${f(b.loopbackBytesPerSecond / MIB)} MiB/s; round trip ${f(b.loopbackRttMs, 3)} ms`],
    [
      "durable round-trip floor (2 × fdatasync + 4 loopback hops, raw)",
      `p50 ${f(b.durableRoundTripFloorMs.p50, 3)} ms, p99 ${f(b.durableRoundTripFloorMs.p99, 3)} ms`,
    ],
  ],
);
if (r.pti) {
  table(
    ["PTI message size", "messages", "messages/s", "MiB/s", "ratio to disk"],
    r.pti.rounds.map((x) => [
      `${x.size} B`,
      f(x.messages),
      f(x.messagesPerSecond),
      f(x.mibPerSecond, 1),
      `${f(100 * x.ratioToDisk, 1)} %`,
    ]),
  );
}
if (r.pti64k) {
  const x = r.pti64k.measured;
  out.push(
    `PTI 64 KiB, warm (a ${f(r.config.bigBytes / MIB)} MiB warm-up round, then ${f(x.messages)} messages measured): ${f(x.messagesPerSecond)} messages/s, ${f(x.mibPerSecond, 1)} MiB/s = **${f(100 * x.ratioToDisk, 1)} %** of the disk measured just before and after (${f(r.pti64k.diskBytesPerSecondBefore / 1e6)} / ${f(r.pti64k.diskBytesPerSecondAfter / 1e6)} MB/s).`,
    "",
  );
}
if (r.pti64b) {
  const x = r.pti64b;
  out.push(
    `PTI 64 B, warm (a warm-up round, then ${x.measured.length} rounds of ${f(x.measured[0].messages)} messages): **${f(x.medianMessagesPerSecond)} messages/s** median (rounds: ${x.measured.map((m) => f(m.messagesPerSecond)).join(", ")}).`,
    "",
  );
}
if (r.roundTrip) {
  const l = r.roundTrip.latency;
  const t = r.restate;
  const lat = (x) =>
    `p50 ${f(x.p50, 2)} / p90 ${f(x.p90, 2)} / p99 ${f(x.p99, 2)} / max ${f(x.max, 1)} (n = ${f(x.n)})`;
  const rows = [
    [
      "durable round trip A → B → A, ms",
      lat(l),
      t ? lat(t.latency) : "–",
      t ? `${f(t.latency.p50 / l.p50, 1)}× lower p50` : "–",
    ],
  ];
  for (const c of r.roundTrip.concurrency) {
    const x = t?.concurrency.find((y) => y.callers === c.callers);
    rows.push([
      `durable ops/s, ${c.callers} concurrent caller${c.callers === 1 ? "" : "s"}`,
      f(c.opsPerSecond),
      x ? f(x.opsPerSecond) : "–",
      x ? `${f(c.opsPerSecond / x.opsPerSecond, 1)}×` : "–",
    ]);
  }
  table(
    [
      "workload",
      "Immortal",
      t ? `Restate ${t.versions.server} (SDK ${t.versions.sdk})` : "Restate",
      "Immortal / Restate",
    ],
    rows,
  );
}
if (r.recovery) {
  const x = r.recovery;
  out.push(
    `Recovery: ${f(x.replayedBytes / 1e6)} MB of log (${x.messageSize} B messages) replayed in ${f(x.replaySeconds, 2)} s = **${f(x.replayMBps)} MB/s**; binding start to primary ${f(x.bindingStartToPrimarySeconds, 2)} s.`,
    "",
  );
}
const names = {
  pti64KiBRatioToDisk: ["PTI 64 KiB ≥ 70 % of the disk", (v) => `${f(100 * v, 1)} %`],
  pti64BMessagesPerSecond: ["PTI 64 B ≥ 300,000 messages/s", (v) => f(v)],
  roundTripP50Ms: ["durable round trip p50 ≤ 1.5 ms", (v) => `${f(v, 2)} ms`],
  opsAt64VsRestate: ["≥ 100× Restate's durable ops/s at 64 callers", (v) => `${f(v, 1)}×`],
  recoveryMBps: ["recovery ≥ 200 MB/s", (v) => `${f(v)} MB/s`],
};
table(
  ["target", "this run", "met"],
  Object.entries(r.targets).map(([k, v]) => [names[k][0], names[k][1](v.value), v.met ? "yes" : "**no**"]),
);
const text = out.join("\n");
console.log(text);
if (write) {
  const BEGIN = "<!-- bench:system:begin (generated by tools/bench/src/report.mjs --write) -->";
  const END = "<!-- bench:system:end -->";
  for (const readme of [path.join(here, "../../../README.md"), path.join(here, "../README.md")]) {
    const md = readFileSync(readme, "utf8");
    const a = md.indexOf(BEGIN);
    const b = md.indexOf(END);
    if (a < 0 || b < a) throw new Error(`${readme} has no ${BEGIN} … ${END} block`);
    writeFileSync(readme, `${md.slice(0, a + BEGIN.length)}\n\n${text.trimEnd()}\n\n${md.slice(b)}`);
    console.error(`updated ${path.relative(process.cwd(), readme)}`);
  }
}
