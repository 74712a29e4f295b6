// Envelope codec micro-benchmark: the SDK codec's fast layout against the general serializer, for the PTI
// envelope (five arguments, a 64-byte payload). Build first; run: node packages/sdk/bench/envelope.mjs
import { msgpackSerializer as s } from "@immortal/checkpoint";
import { defaultCodec } from "../dist/index.js";

const c = defaultCodec();
const payload = new Uint8Array(64).fill(1);
const env = { t: Date.now(), a: [3, payload, 1733e9, false, false], m: "receive" };
const N = 500000;
for (const [name, enc, dec] of [
  ["general", (v) => s.encode(v), (b) => s.decode(b)],
  ["fast", c.encode, c.decode],
]) {
  for (let r = 0; r < 3; r++) {
    let t0 = process.hrtime.bigint();
    let b;
    for (let i = 0; i < N; i++) b = enc(env);
    const te = Number(process.hrtime.bigint() - t0) / N;
    t0 = process.hrtime.bigint();
    for (let i = 0; i < N; i++) dec(b);
    const td = Number(process.hrtime.bigint() - t0) / N;
    if (r === 2) console.log(name, "encode", te.toFixed(0), "ns decode", td.toFixed(0), "ns bytes", b.length);
  }
}
