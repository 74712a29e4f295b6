// Micro-benchmark of @immortal/wire: check-byte hashing (native vs WASM vs hybrid), frame and record decoding,
// message encoding. Run with `pnpm --filter @immortal/wire bench` (builds nothing: build first).
//
// Method: every case is warmed up for ~200 ms and calibrated so that one sample takes ~10 ms, then timed for
// BENCH_SAMPLES samples (default 31) with process.hrtime; the tables show the median sample. Cases that are
// compared with each other (the hash candidates) have their samples interleaved, so that load from other
// processes hits them alike. A GC runs before each case (node --expose-gc). Results feed a sink so that
// nothing is optimised away.
import os from "node:os";
import {
  checkBytes,
  checkBytesNative,
  checkBytesWasm,
  decodeMessages,
  decodeRecord,
  encodeMessage,
  encodeRecord,
  messageSize,
  SMALL_HASH_THRESHOLD,
  writeMessage,
} from "../dist/index.js";

const SAMPLES = Number(process.env.BENCH_SAMPLES ?? 31);
const SAMPLE_NS = 10e6;
const WARMUP_NS = 200e6;

let sink = 0;

/** Warms `call` up and returns how many calls make one sample of ~SAMPLE_NS. */
function calibrate(call) {
  let reps = 1;
  const warmStart = process.hrtime.bigint();
  for (;;) {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < reps; i++) call();
    const dt = Number(process.hrtime.bigint() - t0);
    if (dt < SAMPLE_NS) reps = Math.max(reps + 1, Math.ceil((reps * SAMPLE_NS) / Math.max(dt, 1)));
    if (Number(process.hrtime.bigint() - warmStart) > WARMUP_NS && dt >= SAMPLE_NS / 2) return reps;
  }
}

function sample(call, reps, opsPerCall) {
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < reps; i++) call();
  return Number(process.hrtime.bigint() - t0) / (reps * opsPerCall);
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
};

/**
 * Measures several cases with their samples interleaved (one sample of each in turn, rotating the order), so
 * that load from other processes hits every case alike. Returns the median ns/op of each case, by name.
 * `cases` maps a name to `[call, opsPerCall]`, where `call` performs `opsPerCall` operations.
 */
function measureInterleaved(cases) {
  globalThis.gc?.();
  const names = Object.keys(cases);
  const reps = Object.fromEntries(names.map((n) => [n, calibrate(cases[n][0])]));
  const samples = Object.fromEntries(names.map((n) => [n, []]));
  for (let s = 0; s < SAMPLES; s++) {
    for (let k = 0; k < names.length; k++) {
      const n = names[(k + s) % names.length];
      samples[n].push(sample(cases[n][0], reps[n], cases[n][1]));
    }
  }
  return Object.fromEntries(names.map((n) => [n, median(samples[n])]));
}

const fmtNs = (ns) => (ns < 100 ? ns.toFixed(1) : ns.toFixed(0));
const fmtGBs = (bytes, ns) => (bytes / ns).toFixed(2); // bytes per ns = GB/s
const fmtRate = (ns) => {
  const perSec = 1e9 / ns;
  return perSec >= 1e6 ? `${(perSec / 1e6).toFixed(2)} M` : `${(perSec / 1e3).toFixed(1)} k`;
};

function table(headers, rows) {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => String(r[i]).length)));
  const line = (cells) => `| ${cells.map((c, i) => String(c).padEnd(widths[i])).join(" | ")} |`;
  console.log(line(headers));
  console.log(`|${widths.map((w) => "-".repeat(w + 2)).join("|")}|`);
  for (const r of rows) console.log(line(r));
  console.log("");
}

function randomBytes(n, seed) {
  const b = new Uint8Array(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    b[i] = x & 0xff;
  }
  return b;
}

/** An RPC whose whole frame (size prefix included) is exactly `total` bytes. */
function rpcOfSize(total, layout) {
  const base = { type: 0, reserved: 0, methodId: 7, rpcType: 1 };
  if (layout === "outgoing") base.destination = "";
  for (let n = total; n >= 0; n--) {
    const m = { ...base, args: randomBytes(n, total) };
    if (messageSize(m) === total) return m;
  }
  throw new Error(`no RPC of exactly ${total} bytes`);
}

console.log(
  `@immortal/wire micro-benchmark — Node ${process.version}, ${os.cpus().length} × ${os.cpus()[0]?.model ?? "?"}`,
);
console.log(
  `median of ${SAMPLES} samples of ~${SAMPLE_NS / 1e6} ms each, after ~${WARMUP_NS / 1e6} ms warm-up; load average ${os
    .loadavg()
    .map((l) => l.toFixed(2))
    .join(" ")}\n`,
);

// ---------------------------------------------------------------------------------------------
// 1. Check bytes: xxHash64 candidates

console.log(
  `## Check bytes (xxHash64, seed 0); hybrid = WASM up to ${SMALL_HASH_THRESHOLD} B, native above\n`,
);
const hashRows = [];
for (const size of [64, 256, 512, 1024, 1536, 2048, 4096, 65536]) {
  const buf = Buffer.from(randomBytes(size, size + 1));
  const inner = Math.max(1, Math.floor(16384 / size)); // amortise the loop over ≥ 16 KiB per call
  // one closure per candidate, so that each inner call site stays monomorphic
  const { native, wasm, hybrid } = measureInterleaved({
    native: [
      () => {
        for (let i = 0; i < inner; i++) if (checkBytesNative(buf) === 0n) sink++;
      },
      inner,
    ],
    wasm: [
      () => {
        for (let i = 0; i < inner; i++) if (checkBytesWasm(buf) === 0n) sink++;
      },
      inner,
    ],
    hybrid: [
      () => {
        for (let i = 0; i < inner; i++) if (checkBytes(buf) === 0n) sink++;
      },
      inner,
    ],
  });
  const label = size >= 1024 ? `${size / 1024} KiB` : `${size} B`;
  hashRows.push([
    label,
    fmtNs(native),
    fmtGBs(size, native),
    fmtNs(wasm),
    fmtGBs(size, wasm),
    fmtNs(hybrid),
    fmtGBs(size, hybrid),
    native < wasm ? `native ×${(wasm / native).toFixed(2)}` : `WASM ×${(native / wasm).toFixed(2)}`,
  ]);
}
table(
  [
    "input",
    "native ns/op",
    "native GB/s",
    "WASM ns/op",
    "WASM GB/s",
    "hybrid ns/op",
    "hybrid GB/s",
    "faster",
  ],
  hashRows,
);

// ---------------------------------------------------------------------------------------------
// 2. Decoding

console.log("## Decoding 64-byte incoming RPC frames\n");
const N = 10_000;
const rpc64 = rpcOfSize(64, "incoming");
const frame64 = encodeMessage(rpc64);
const packed = Buffer.alloc(N * 64);
for (let i = 0; i < N; i++) packed.set(frame64, i * 64);

// All decode cases are measured interleaved (see measureInterleaved), so that verify/no-verify compare fairly.
const decodeCases = {
  packed: [
    () => {
      sink += decodeMessages(packed, "incoming").length;
    },
    N,
  ],
};
const decodeLabels = { packed: [`decodeMessages, ${N} packed frames`, 1, 64] };
for (const perRecord of [1, 16]) {
  const count = Math.ceil(N / perRecord);
  const recs = [];
  for (let i = 0; i < count; i++) {
    recs.push(encodeRecord({ committerId: 0x12345678, sequence: i, messages: Array(perRecord).fill(rpc64) }));
  }
  const stream = Buffer.concat(recs);
  const recLen = recs[0].length;
  for (const verify of [true, false]) {
    const name = `${perRecord}-${verify}`;
    decodeCases[name] = [
      () => {
        let p = 0;
        while (p < stream.length) {
          const r = decodeRecord(stream, p, { verify });
          sink += r.messages.length;
          p = r.next;
        }
      },
      count * perRecord,
    ];
    decodeLabels[name] = [
      `decodeRecord${verify ? "" : " (verify: false)"}, ${perRecord} msg/record (${recLen} B)`,
      perRecord,
      recLen,
    ];
  }
}
const decodeNs = measureInterleaved(decodeCases);
const decodeRows = Object.entries(decodeLabels).map(([name, [label, perRecord, bytesPerUnit]]) => {
  const ns = decodeNs[name];
  return [
    label,
    fmtRate(ns),
    name === "packed" ? "-" : fmtRate(ns * perRecord),
    fmtGBs(bytesPerUnit, ns * perRecord),
  ];
});
table(["case", "messages/s", "records/s", "GB/s"], decodeRows);

// ---------------------------------------------------------------------------------------------
// 3. Encoding

console.log("## Encoding outgoing self-call RPCs with writeMessage into a preallocated buffer\n");
const encodeCases = {};
for (const [total, perCall] of [
  [64, N],
  [65536, 16],
]) {
  const m = rpcOfSize(total, "outgoing");
  const out = Buffer.alloc(total * perCall);
  encodeCases[total] = [
    () => {
      let p = 0;
      for (let i = 0; i < perCall; i++) p = writeMessage(out, p, m);
      sink += p;
    },
    perCall,
  ];
}
const encodeNs = measureInterleaved(encodeCases);
const encodeRows = Object.entries(encodeNs).map(([total, ns]) => [
  total >= 1024 ? `${total / 1024} KiB` : `${total} B`,
  fmtRate(ns),
  fmtNs(ns),
  fmtGBs(Number(total), ns),
]);
table(["frame", "messages/s", "ns/msg", "GB/s"], encodeRows);

if (sink === 42) console.log(""); // keep the sink alive
