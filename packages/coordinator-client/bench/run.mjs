// Micro-benchmark of @immortal/coordinator-client (build first: `npx -y pnpm@10 --filter @immortal/coordinator-client... build`).
//   node --expose-gc packages/coordinator-client/bench/run.mjs    (or `npx -y pnpm@10 --filter @immortal/coordinator-client bench`)
// A fake coordinator on loopback TCP plays the first-start handshake, then:
// - dispatch: streams pre-encoded log records of 64-byte fork RPCs (check bytes verified, as in production)
//   and times them until the app's onMessage has seen the last one;
// - send: the app calls sendRpc in bursts of 1000 per tick (each burst → one RPCBatch) and the fake counts the
//   bytes until all have arrived.
// Each figure is the best of ROUNDS rounds, each on a fresh connection.
import { once } from "node:events";
import net from "node:net";
import { MessageDecoder, MessageWriter } from "@immortal/log";
import { CONTROL_SEQUENCE, encodeRecord, MessageType, messageSize, zigZagIntSize } from "@immortal/wire";
import { CoordinatorClient } from "../dist/index.js";

const ROUNDS = Number(process.env.ROUNDS ?? 5);
const MESSAGES = Number(process.env.MESSAGES ?? 1_000_000);

/** An incoming fork RPC whose whole frame is exactly 64 bytes. */
function rpc64() {
  const base = { type: 0, reserved: 0, methodId: 7, rpcType: 1, args: new Uint8Array(0) };
  let n = 64 - messageSize(base);
  for (;;) {
    const m = { ...base, args: new Uint8Array(n).fill(0x5a) };
    const s = messageSize(m);
    if (s === 64) return m;
    n -= s - 64;
  }
}

/** Log records 1.. of `perRecord` RPCs each, packed into one stream (after record 0, the InitialMessage). */
function encodeLog(total, perRecord) {
  const w = new MessageWriter({ slabSize: 4 * 1024 * 1024 });
  const m = rpc64();
  const records = [];
  let seq = 1;
  for (let sent = 0; sent < total; ) {
    const n = Math.min(perRecord, total - sent);
    for (let i = 0; i < n; i++) w.add(m);
    records.push(w.takeRecord({ committerId: 1, sequence: seq++ }));
    sent += n;
  }
  return Buffer.concat(records);
}

async function listen(server) {
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  return server.address().port;
}

/**
 * One connection: a fake coordinator and a client whose app calls `onMessage`. Resolves once the client is
 * primary and record 0 was dispatched.
 */
async function session(onMessage) {
  const rs = net.createServer();
  const ss = net.createServer();
  const receivePort = await listen(rs);
  const sendPort = await listen(ss);
  const fromClient = once(rs, "connection");
  const toClient = once(ss, "connection");
  let received = 0;
  let initial;
  let checkpointed = false;
  const decoder = new MessageDecoder((ev) => {
    if (ev.type === MessageType.InitialMessage) initial = ev;
    if (ev.type === "checkpointEnd") checkpointed = true;
  });
  let handshake = true;
  let client;
  let ready;
  const primaryDispatched = new Promise((r) => {
    ready = r;
  });
  const app = {
    onMessage(m, info) {
      if (m.type === MessageType.InitialMessage) return ready();
      onMessage(m, info, client);
    },
    saveState: () => new Uint8Array(8),
    async loadState(chunks) {
      for await (const _ of chunks);
    },
  };
  client = new CoordinatorClient({ receivePort, sendPort, app });
  await client.start();
  const [inSock] = await fromClient;
  const [outSock] = await toClient;
  inSock.on("data", (d) => {
    received += d.length;
    if (handshake) decoder.push(d);
  });
  outSock.write(encodeRecord({ committerId: 1, sequence: CONTROL_SEQUENCE, messages: [{ type: 11 }] }));
  while (!checkpointed) await new Promise((r) => setTimeout(r, 1));
  handshake = false;
  outSock.write(encodeRecord({ committerId: 1, sequence: 0, messages: [initial] }));
  await primaryDispatched;
  return {
    client,
    outSock,
    received: () => received,
    resetReceived: () => {
      received = 0;
    },
    async close() {
      await client.close();
      outSock.destroy();
      inSock.destroy();
      rs.close();
      ss.close();
    },
  };
}

function write(sock, buf) {
  // Big writes in 1 MiB pieces with back-pressure, as a coordinator delivers.
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

const echoArgs = new Uint8Array(56).fill(2);

async function benchDispatch(perRecord, echo = false) {
  const log = encodeLog(MESSAGES, perRecord);
  let best = Number.POSITIVE_INFINITY;
  for (let r = 0; r < ROUNDS; r++) {
    globalThis.gc?.();
    let count = 0;
    let done;
    const finished = new Promise((res) => {
      done = res;
    });
    const s = await session((_m, _info, client) => {
      if (echo) client.sendRpc("", 8, 1, echoArgs);
      if (++count === MESSAGES) done();
    });
    const t0 = process.hrtime.bigint();
    void write(s.outSock, log);
    await finished;
    const secs = Number(process.hrtime.bigint() - t0) / 1e9;
    best = Math.min(best, secs);
    await s.close();
  }
  return MESSAGES / best;
}

async function benchSend() {
  const BURST = 1000;
  // Outgoing self-call frames of exactly 64 bytes.
  const frame = (n) =>
    messageSize({ type: 0, destination: "", reserved: 0, methodId: 7, rpcType: 1, args: new Uint8Array(n) });
  const args = new Uint8Array(64 - frame(0) + 0).fill(1);
  if (frame(args.length) !== 64) throw new Error("frame size");
  const body = 1 + zigZagIntSize(BURST) + BURST * 64;
  const expectBytes = (MESSAGES / BURST) * (zigZagIntSize(body) + body);
  let best = Number.POSITIVE_INFINITY;
  for (let r = 0; r < ROUNDS; r++) {
    globalThis.gc?.();
    const s = await session(() => {});
    s.resetReceived();
    const t0 = process.hrtime.bigint();
    for (let sent = 0; sent < MESSAGES; sent += BURST) {
      for (let i = 0; i < BURST; i++) s.client.sendRpc("", 7, 1, args);
      // End the tick (the client flushes the burst as one RPCBatch); wait for the socket when it is full.
      await new Promise((res) => setImmediate(res));
      if (s.client.bufferedBytes > 8 * 1024 * 1024) await s.client.whenDrained();
    }
    while (s.received() < expectBytes) await new Promise((res) => setImmediate(res));
    const secs = Number(process.hrtime.bigint() - t0) / 1e9;
    if (s.received() !== expectBytes) throw new Error(`received ${s.received()} of ${expectBytes} bytes`);
    best = Math.min(best, secs);
    await s.close();
  }
  return { perSecond: MESSAGES / best, mbPerSecond: expectBytes / best / 1e6 };
}

const fmt = (n) => `${(n / 1e6).toFixed(2)} M msg/s`;
console.log(`node ${process.version}, ${MESSAGES} messages per round, best of ${ROUNDS}`);
console.log(`dispatch, 64 B forks, 256 per record: ${fmt(await benchDispatch(256))}`);
console.log(`dispatch, 64 B forks, 16 per record:  ${fmt(await benchDispatch(16))}`);
console.log(`dispatch, 64 B forks, 1 per record:   ${fmt(await benchDispatch(1))}`);
console.log(`dispatch + one sendRpc per message, 256 per record: ${fmt(await benchDispatch(256, true))}`);
const send = await benchSend();
console.log(
  `send, 64 B self-calls, 1000 per tick:  ${fmt(send.perSecond)} (${send.mbPerSecond.toFixed(0)} MB/s on the wire)`,
);
