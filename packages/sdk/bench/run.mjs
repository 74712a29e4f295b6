// SDK dispatch benchmark: the binding alone, fed by an in-memory fake coordinator over loopback (no disk, no
// logging: the coordinator's part is measured by tools/bench/src/ic-bench.mjs). Build first:
//   npx -y pnpm@10 --filter @immortal/sdk... build && node --expose-gc packages/sdk/bench/run.mjs
// It streams pre-encoded log records of 64-byte fork RPCs (256 per record, check bytes verified) and times
// them until the last one was handled, three ways:
//   raw        @immortal/coordinator-client, onMessage only counts;
//   raw+decode the same, plus decoding each message's MessagePack arguments (what any real app must do);
//   sdk        @immortal/sdk: envelope decode, handler lookup, context, the handler (increments the state).
import { once } from "node:events";
import net from "node:net";
import { CoordinatorClient } from "@immortal/coordinator-client";
import { MessageDecoder, MessageWriter } from "@immortal/log";
import { CONTROL_SEQUENCE, encodeRecord, MessageType, messageSize } from "@immortal/wire";
import { defaultCodec, defineImmortal, Immortal } from "../dist/index.js";

const ROUNDS = Number(process.env.ROUNDS ?? 5);
const MESSAGES = Number(process.env.MESSAGES ?? 500_000);
const PER_RECORD = 256;
const codec = defaultCodec();

const Sink = defineImmortal({
  name: "Sink",
  state: () => ({ n: 0 }),
  handlers: {
    hit(ctx, _pad) {
      ctx.state.n++;
    },
  },
});
const HIT = Sink.methodIds.get("hit");

/** A fork RPC to `hit` whose frame is exactly 64 bytes, its arguments an SDK envelope. */
function rpc64() {
  for (let pad = 40; pad > 0; pad--) {
    const args = codec.encode({ t: 1, a: ["x".repeat(pad)], m: "hit" });
    const m = { type: 0, reserved: 0, methodId: HIT, rpcType: 1, args };
    if (messageSize(m) === 64) return m;
  }
  throw new Error("no 64-byte framing found");
}

function encodeLog(total) {
  const w = new MessageWriter({ slabSize: 4 * 1024 * 1024 });
  const m = rpc64();
  const records = [];
  let seq = 1;
  for (let sent = 0; sent < total; sent += PER_RECORD) {
    for (let i = 0; i < Math.min(PER_RECORD, total - sent); i++) w.add(m);
    records.push(w.takeRecord({ committerId: 1, sequence: seq++ }));
  }
  return Buffer.concat(records);
}

async function listen(server) {
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  return server.address().port;
}

/** A fake coordinator: plays first start (control record, then record 0 echoing the InitialMessage). */
async function fakeCoordinator() {
  const rs = net.createServer();
  const ss = net.createServer();
  const ports = { receivePort: await listen(rs), sendPort: await listen(ss) };
  const accepted = Promise.all([once(rs, "connection"), once(ss, "connection")]);
  return {
    ports,
    async handshake() {
      const [[inSock], [outSock]] = await accepted;
      let initial;
      let checkpointed = false;
      const decoder = new MessageDecoder((ev) => {
        if (ev.type === MessageType.InitialMessage) initial = ev;
        if (ev.type === "checkpointEnd") checkpointed = true;
      });
      const onData = (d) => decoder.push(d);
      inSock.on("data", onData);
      outSock.write(encodeRecord({ committerId: 1, sequence: CONTROL_SEQUENCE, messages: [{ type: 11 }] }));
      while (!checkpointed) await new Promise((r) => setTimeout(r, 1));
      inSock.off("data", onData);
      inSock.resume();
      outSock.write(encodeRecord({ committerId: 1, sequence: 0, messages: [initial] }));
      const close = () => {
        inSock.destroy();
        outSock.destroy();
        rs.close();
        ss.close();
      };
      return { outSock, close };
    },
  };
}

function write(sock, buf) {
  return new Promise((resolve) => {
    let p = 0;
    const pump = () => {
      while (p < buf.length) {
        const piece = buf.subarray(p, Math.min(buf.length, p + 1024 * 1024));
        p += piece.length;
        if (!sock.write(piece)) return sock.once("drain", pump);
      }
      resolve();
    };
    pump();
  });
}

async function rawRound(log, decode) {
  const ic = await fakeCoordinator();
  let count = 0;
  let done;
  const finished = new Promise((r) => (done = r));
  let ready;
  const primary = new Promise((r) => (ready = r));
  const client = new CoordinatorClient({
    ...ic.ports,
    app: {
      onMessage(m) {
        if (m.type === MessageType.InitialMessage) return ready();
        if (decode) codec.decode(m.args);
        if (++count === MESSAGES) done();
      },
      saveState: () => new Uint8Array(4),
      async loadState(chunks) {
        for await (const _ of chunks);
      },
    },
  });
  await client.start();
  const s = await ic.handshake();
  await primary;
  const t0 = process.hrtime.bigint();
  void write(s.outSock, log);
  await finished;
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  await client.close();
  s.close();
  return MESSAGES / secs;
}

async function sdkRound(log) {
  const ic = await fakeCoordinator();
  const node = new Immortal({ instanceName: "sink", type: Sink, ...ic.ports, codec });
  await node.start();
  const s = await ic.handshake();
  await node.whenPrimary();
  const t0 = process.hrtime.bigint();
  void write(s.outSock, log);
  while (node.state.n < MESSAGES) await new Promise((r) => setImmediate(r));
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  await node.close();
  s.close();
  return MESSAGES / secs;
}

async function best(f) {
  const rates = [];
  for (let r = 0; r < ROUNDS; r++) {
    globalThis.gc?.();
    rates.push(await f());
  }
  return Math.max(...rates);
}

const log = encodeLog(MESSAGES);
// Interleave the three so that machine drift affects them alike.
const raw = await best(() => rawRound(log, false));
const rawDecode = await best(() => rawRound(log, true));
const sdk = await best(() => sdkRound(log));
const f = (x) => `${(x / 1e6).toFixed(2)} M msg/s`;
console.log(`64-byte fork RPCs, ${PER_RECORD} per record, ${MESSAGES} per round, best of ${ROUNDS}`);
console.log(`| binding | dispatch rate |\n|---|---|`);
console.log(`| raw coordinator-client, count only | ${f(raw)} |`);
console.log(`| raw coordinator-client + argument decode | ${f(rawDecode)} |`);
console.log(`| @immortal/sdk handler | ${f(sdk)} |`);
console.log(
  `\nSDK overhead: ${((100 * (raw - sdk)) / raw).toFixed(0)} % over the raw client counting, ${((100 * (rawDecode - sdk)) / rawDecode).toFixed(0)} % over the raw client decoding arguments (aim ≤ 20 %); aim ≥ 1 M/s: ${sdk >= 1e6 ? "met" : "NOT met"}`,
);
