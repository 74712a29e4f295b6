// Micro-benchmark of @immortal/checkpoint (build first: `npx -y pnpm@10 --filter @immortal/checkpoint build`).
//   node --expose-gc packages/checkpoint/bench/run.mjs     (or `npx -y pnpm@10 --filter @immortal/checkpoint bench`)
// Throughput is encoded bytes per second (MB = 10^6 bytes) for each direction, best of ROUNDS rounds.
// JSON.stringify/parse and v8.serialize/deserialize run on the same data as references; they are not
// alternatives (JSON loses Dates, Maps and classes; v8's format is not stable across Node versions).
import v8 from "node:v8";
import { ClassRegistry, createJsonSerializer, createMsgpackSerializer } from "../dist/index.js";

const ROUNDS = Number(process.env.ROUNDS ?? 5);

class Account {
  constructor(id) {
    this.id = id;
    this.owner = `owner-${id}`;
    this.email = `user${id}@example.com`;
    this.balance = id * 1.25;
    this.tags = ["retail", id % 2 === 0 ? "even" : "odd"];
    this.createdAt = new Date(1_700_000_000_000 + id * 1000);
    this.active = id % 3 !== 0;
  }
}

const registry = new ClassRegistry();
registry.register(Account);
const json = createJsonSerializer({ registry });
const msgpack = createMsgpackSerializer({ registry });

const N = 100_000;
const accounts = new Map();
for (let i = 0; i < N; i++) accounts.set(`acct-${i}`, new Account(i));

const blobs = [];
for (let i = 0; i < 8; i++) blobs.push(new Uint8Array(8 << 20).fill(i));

// Shared references everywhere: every order points at one of the accounts (msgpack's slower path).
const orders = [];
const some = [...accounts.values()].slice(0, 1000);
for (let i = 0; i < 50_000; i++) orders.push({ id: i, account: some[i % some.length], qty: i % 7 });

const states = [
  ["100k class instances in a Map", { accounts }],
  ["8 × 8 MiB Uint8Array", { blobs }],
  ["50k orders → 1k shared accounts", { accounts: some, orders }],
];

function best(fn) {
  let bestNs = Number.POSITIVE_INFINITY;
  let result;
  for (let r = 0; r < ROUNDS; r++) {
    globalThis.gc?.();
    const t0 = process.hrtime.bigint();
    result = fn();
    const ns = Number(process.hrtime.bigint() - t0);
    if (ns < bestNs) bestNs = ns;
  }
  return { s: bestNs / 1e9, result };
}

async function bestAsync(fn) {
  let bestNs = Number.POSITIVE_INFINITY;
  for (let r = 0; r < ROUNDS; r++) {
    globalThis.gc?.();
    const t0 = process.hrtime.bigint();
    await fn();
    const ns = Number(process.hrtime.bigint() - t0);
    if (ns < bestNs) bestNs = ns;
  }
  return bestNs / 1e9;
}

// Under a millisecond means no bytes were copied (views of the state or of the input): a rate would mislead.
const mbps = (bytes, s) =>
  s < 0.001
    ? "< 1 ms (views, no copy)"
    : `${(bytes / s / 1e6).toFixed(0)} MB/s (${(s * 1000).toFixed(0)} ms)`;
const rows = [];

for (const [label, state] of states) {
  for (const [name, s] of [
    ["json-tagged", json],
    ["msgpack", msgpack],
  ]) {
    const enc = best(() => s.encode(state));
    const bytes = enc.result;
    const dec = best(() => s.decode(bytes));
    const senc = best(() => {
      const chunks = [];
      for (const c of s.encodeStream(state)) chunks.push(c);
      return chunks;
    });
    const chunks = senc.result;
    const streamedBytes = chunks.reduce((n, c) => n + c.length, 0);
    const sdec = await bestAsync(() => s.decodeStream(chunks));
    rows.push([
      label,
      name,
      `${(bytes.length / 1e6).toFixed(1)} MB`,
      mbps(bytes.length, enc.s),
      mbps(bytes.length, dec.s),
      mbps(streamedBytes, senc.s),
      mbps(streamedBytes, sdec),
    ]);
    console.error(`done: ${label} / ${name}`);
  }
  // References, on data they can hold: JSON gets plain objects (Dates become strings), v8 gets the state.
  if (label.startsWith("100k")) {
    const plain = Object.fromEntries([...accounts].map(([k, a]) => [k, { ...a }]));
    const enc = best(() => JSON.stringify(plain));
    const text = enc.result;
    const dec = best(() => JSON.parse(text));
    const n = Buffer.byteLength(text);
    rows.push([
      label,
      "(JSON.stringify/parse, plain)",
      `${(n / 1e6).toFixed(1)} MB`,
      mbps(n, enc.s),
      mbps(n, dec.s),
      "",
      "",
    ]);
  }
  const enc = best(() => v8.serialize(state));
  const dec = best(() => v8.deserialize(enc.result));
  const n = enc.result.length;
  rows.push([
    label,
    "(v8.serialize/deserialize)",
    `${(n / 1e6).toFixed(1)} MB`,
    mbps(n, enc.s),
    mbps(n, dec.s),
    "",
    "",
  ]);
}

const header = ["state", "format", "size", "encode", "decode", "encodeStream", "decodeStream"];
const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
const line = (cells) => `| ${cells.map((c, i) => c.padEnd(widths[i])).join(" | ")} |`;
console.log(line(header));
console.log(`| ${widths.map((w) => "-".repeat(w)).join(" | ")} |`);
for (const r of rows) console.log(line(r));
console.log(`\nnode ${process.version}, ${ROUNDS} rounds, best round reported`);
