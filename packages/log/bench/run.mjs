// Micro-benchmark of @immortal/log (run after building: `npx -y pnpm@10 --filter @immortal/log... build`).
//   node --expose-gc packages/log/bench/run.mjs        (or `npx -y pnpm@10 --filter @immortal/log bench`)
// Streams are pre-encoded, then fed in 60 KiB chunks as a socket would deliver them (so some units straddle
// chunks). Each figure is the best of several rounds of hand-rolled hrtime loops.
import { encodeRecord, messageSize } from "@immortal/wire";
import { MessageDecoder, MessageWriter, RecordDecoder, readEvents } from "../dist/index.js";

// 60 KiB, not 64: frame boundaries must not line up with chunk boundaries, as on a real socket.
const CHUNK = 60 * 1024;
const ROUNDS = Number(process.env.ROUNDS ?? 7);

/** An RPC whose whole encoded frame is exactly `total` bytes. */
function rpcOfSize(total, outgoing) {
  const base = outgoing
    ? { type: 0, destination: "", reserved: 0, methodId: 7, rpcType: 1, args: new Uint8Array(0) }
    : { type: 0, reserved: 0, methodId: 7, rpcType: 1, args: new Uint8Array(0) };
  let n = total - messageSize(base);
  for (;;) {
    const m = { ...base, args: new Uint8Array(n).fill(0x5a) };
    const s = messageSize(m);
    if (s === total) return m;
    n -= s - total;
  }
}

function chunks(buf) {
  const out = [];
  for (let p = 0; p < buf.length; p += CHUNK) out.push(buf.subarray(p, Math.min(buf.length, p + CHUNK)));
  return out;
}

function best(fn) {
  let bestNs = Number.POSITIVE_INFINITY;
  for (let r = 0; r < ROUNDS; r++) {
    globalThis.gc?.();
    const t0 = process.hrtime.bigint();
    fn();
    const ns = Number(process.hrtime.bigint() - t0);
    if (ns < bestNs) bestNs = ns;
  }
  return bestNs / 1e9;
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

const fmtRate = (n) => `${(n / 1e6).toFixed(2)} M/s`;
const fmtGBs = (bytes, s) => `${(bytes / s / 1e9).toFixed(2)} GB/s`;
const rows = [];
function report(name, value) {
  rows.push([name, value]);
  console.log(`${name.padEnd(58)} ${value}`);
}

// ---- decode: 64 B RPCs, messages mode (binding → IC, outgoing layout) --------------------------------
{
  const N = 400_000;
  const w = new MessageWriter();
  const m = rpcOfSize(64, true);
  for (let i = 0; i < N; i++) w.add(m);
  const cs = chunks(w.take());
  const expectCount = (count) => {
    if (count !== N) throw new Error(`decoded ${count} of ${N} messages`);
  };
  const dec = () => {
    let count = 0;
    const d = new MessageDecoder(() => {
      count++;
    });
    for (const c of cs) d.push(c);
    d.end();
    expectCount(count);
  };
  const s = best(dec);
  report("decode 64 B RPCs, messages mode (push API)", fmtRate(N / s));

  const it = async () => {
    async function* src() {
      for (const c of cs) yield c;
    }
    let count = 0;
    for await (const _ of readEvents(src(), { mode: "messages" })) count++;
    expectCount(count);
  };
  const sa = await bestAsync(it);
  report("decode 64 B RPCs, messages mode (async iterator)", fmtRate(N / sa));
}

// ---- decode: 64 B RPCs, records mode (4 RPCs per record) ------------------------------------------
{
  const R = 100_000;
  const PER = 4;
  const m = rpcOfSize(64, false);
  const w = new MessageWriter();
  const parts = [];
  for (let r = 0; r < R; r++) {
    for (let i = 0; i < PER; i++) w.add(m);
    parts.push(w.takeRecord({ committerId: 1, sequence: r }));
  }
  const cs = chunks(Buffer.concat(parts));
  for (const verify of [true, false]) {
    const s = best(() => {
      let count = 0;
      const d = new RecordDecoder(
        (ev) => {
          count += ev.type === "record" ? ev.messages.length : 0;
        },
        { verify },
      );
      for (const c of cs) d.push(c);
      d.end();
      if (count !== R * PER) throw new Error(`decoded ${count} of ${R * PER} messages`);
    });
    report(
      `decode 64 B RPCs, records mode, ${PER}/record, verify ${verify ? "on" : "off"}`,
      fmtRate((R * PER) / s),
    );
  }
}

// ---- decode: 64 KiB RPCs ------------------------------------------------------------------------------
{
  const N = 2_000;
  const big = rpcOfSize(64 * 1024, true);
  const w = new MessageWriter();
  for (let i = 0; i < N; i++) w.add(big);
  const cs = chunks(w.take());
  const bytes = N * 64 * 1024;
  const s = best(() => {
    const d = new MessageDecoder(() => {});
    for (const c of cs) d.push(c);
    d.end();
  });
  report("decode 64 KiB RPCs, messages mode", fmtGBs(bytes, s));

  const bigIn = rpcOfSize(64 * 1024 - 24, false);
  const parts = [];
  for (let r = 0; r < N; r++) parts.push(encodeRecord({ committerId: 1, sequence: r, messages: [bigIn] }));
  const rcs = chunks(Buffer.concat(parts));
  for (const verify of [true, false]) {
    const sr = best(() => {
      const d = new RecordDecoder(() => {}, { verify });
      for (const c of rcs) d.push(c);
      d.end();
    });
    report(`decode 64 KiB RPCs, records mode (1/record), verify ${verify ? "on" : "off"}`, fmtGBs(bytes, sr));
  }
}

// ---- checkpoint pass-through ----------------------------------------------------------------------------
{
  const LEN = 256 * 1024 * 1024;
  const head = new MessageWriter().add({ type: 8, length: BigInt(LEN) }).take();
  const body = new Uint8Array(CHUNK);
  const s = best(() => {
    const d = new MessageDecoder(() => {});
    d.push(head);
    for (let n = 0; n < LEN; n += CHUNK) d.push(n + CHUNK <= LEN ? body : body.subarray(0, LEN - n));
    d.end();
  });
  report("checkpoint pass-through (60 KiB chunks)", fmtGBs(LEN, s));
}

// ---- encode ---------------------------------------------------------------------------------------------
{
  const N = 400_000;
  const out = rpcOfSize(64, true);
  const s = best(() => {
    const w = new MessageWriter();
    for (let i = 0; i < N; i++) {
      w.add(out);
      if ((i & 255) === 255) w.take();
    }
    w.take();
  });
  report("encode 64 B RPCs, messages (take() per 256)", fmtRate(N / s));

  const inc = rpcOfSize(64, false);
  const sr = best(() => {
    const w = new MessageWriter();
    let seq = 0;
    for (let i = 0; i < N; i++) {
      w.add(inc);
      if ((i & 3) === 3) w.takeRecord({ committerId: 1, sequence: seq++ });
    }
  });
  report("encode 64 B RPCs, records (takeRecord() per 4, check bytes)", fmtRate(N / sr));

  const B = 2_000;
  const big = rpcOfSize(64 * 1024, true);
  const sb = best(() => {
    const w = new MessageWriter();
    for (let i = 0; i < B; i++) {
      w.add(big);
      w.take();
    }
  });
  report("encode 64 KiB RPCs, messages", fmtGBs(B * 64 * 1024, sb));

  const bigIn = rpcOfSize(64 * 1024 - 24, false);
  const sbr = best(() => {
    const w = new MessageWriter();
    for (let i = 0; i < B; i++) {
      w.add(bigIn);
      w.takeRecord({ committerId: 1, sequence: i });
    }
  });
  report("encode 64 KiB RPCs, records (check bytes)", fmtGBs(B * 64 * 1024, sbr));
}

console.log(`\nnode ${process.version}, ${ROUNDS} rounds, best round reported`);
