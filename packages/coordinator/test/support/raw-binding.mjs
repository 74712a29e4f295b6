#!/usr/bin/env node
// A minimal language binding written directly on @immortal/wire + @immortal/log, run as a real process by the
// coordinator's tests and benchmarks. It implements the client protocol by hand (start-up, recovery,
// checkpoints, replay) and a few deterministic apps, and checks what a real binding would check: record
// sequence IDs consecutive, checkpoints restored exactly.
//
// Usage: node raw-binding.mjs '<json config>'
//   { name, receivePort, sendPort, role: "client" | "server" | "impulser" | "flood",
//     dest?, total?, step?, size?, impulses?, deliveries?: path (appends "seq hash" per record) }
// Prints lines on stdout: READY-PRIMARY, DONE {...}, STATE {...}; exits when the coordinator goes away.
import { appendFileSync } from "node:fs";
import net from "node:net";
import { RecordDecoder } from "@immortal/log";
import { checkBytes, encodeMessage, encodeMessages, MessageType, RpcType } from "@immortal/wire";

const cfg = JSON.parse(process.argv[2]);
const say = (line) => process.stdout.write(`${line}\n`);

// ---------------------------------------------------------------------------------------------------------------
// The apps. Handlers are deterministic functions of (state, message); they emit outgoing RPCs through `out`.
const apps = {
  // Sends `total` forks (method 20, payload = 8-byte call number) to `dest` in continuation steps of `step`.
  client: {
    init: () => ({ sent: 0 }),
    onInitialMessage(_state, out) {
      out.self(10, RpcType.Fork, Buffer.alloc(0));
    },
    handle(state, method, _rpcType, _args, out) {
      if (method !== 10) throw new Error(`client: unknown method ${method}`);
      const n = Math.min(cfg.step ?? 1000, cfg.total - state.sent);
      for (let i = 0; i < n; i++) {
        const payload = Buffer.alloc(Math.max(8, cfg.size ?? 8));
        payload.writeBigUInt64LE(BigInt(++state.sent));
        out.remote(cfg.dest, 20, RpcType.Fork, payload);
      }
      if (state.sent < cfg.total) out.self(10, RpcType.Fork, Buffer.alloc(0));
    },
  },
  // Counts method-20 calls and checks that call numbers arrive exactly once, in order.
  server: {
    init: () => ({ count: 0, last: 0, duplicates: 0, gaps: 0, bytes: 0 }),
    onInitialMessage() {},
    handle(state, method, _rpcType, args) {
      if (method !== 20) throw new Error(`server: unknown method ${method}`);
      const n = Number(Buffer.from(args.buffer, args.byteOffset, 8).readBigUInt64LE(0));
      if (n <= state.last) state.duplicates++;
      else if (n !== state.last + 1) state.gaps++;
      if (n > state.last) state.last = n;
      state.count++;
      state.bytes += args.length;
      if (state.count === cfg.total) say(`DONE ${JSON.stringify(state)}`);
      if (state.count > cfg.total) say(`EXTRA ${JSON.stringify(state)}`);
    },
  },
  // Impulses to itself from a timer (non-deterministic input), each handled by forking a self-call.
  impulser: {
    init: () => ({ impulses: 0, forks: 0 }),
    onInitialMessage() {},
    onPrimary(send) {
      // Each impulse is tagged "<pid>:<k>", unique across sessions, so a test can check which ones were logged.
      let k = 0;
      const t = setInterval(() => {
        if (k >= (cfg.impulses ?? 100)) {
          clearInterval(t);
          say(`SENT-DONE ${process.pid} ${k}`);
          return;
        }
        k++;
        const args = Buffer.from(`${process.pid}:${k}`);
        send(
          encodeMessage({
            type: 0,
            destination: "",
            reserved: 0,
            methodId: 30,
            rpcType: RpcType.Impulse,
            args,
          }),
        );
      }, cfg.intervalMs ?? 5);
    },
    handle(state, method, _rpcType, args, out) {
      if (method === 30) {
        state.impulses++;
        if (cfg.impulseLog) appendFileSync(cfg.impulseLog, `${Buffer.from(args)}\n`);
        out.self(31, RpcType.Fork, Buffer.from(String(state.impulses)));
      } else if (method === 31) {
        state.forks++;
        if (Number(Buffer.from(args).toString()) !== state.forks) throw new Error("fork out of order");
      } else throw new Error(`impulser: unknown method ${method}`);
    },
  },
  // A chain of self-calls: each handler forks the next, until `total`.
  selfchain: {
    init: () => ({ n: 0 }),
    onInitialMessage(_state, out) {
      out.self(50, RpcType.Fork, Buffer.from("0"));
    },
    handle(state, method, _rpcType, args, out) {
      if (method !== 50) throw new Error(`selfchain: unknown method ${method}`);
      if (Number(Buffer.from(args).toString()) !== state.n)
        throw new Error(`selfchain: call ${Buffer.from(args)} out of order at ${state.n}`);
      state.n++;
      if (state.n < cfg.total) out.self(50, RpcType.Fork, Buffer.from(String(state.n)));
      else say(`DONE ${JSON.stringify(state)}`);
    },
  },
  // Benchmark load: keeps `window` self-calls of `size` bytes in flight; reports the delivery rate after a
  // warm-up (the first 10 %), and with window 1 the durable round-trip latency per call.
  flood: {
    init: () => ({ delivered: 0 }),
    onInitialMessage(_state, out) {
      const window = Math.min(cfg.window ?? 256, cfg.total);
      for (let i = 0; i < window; i++) out.self(40, RpcType.Fork, Buffer.alloc(cfg.size ?? 64));
    },
    handle(state, _method, _rpcType, _args, out) {
      state.delivered++;
      const warm = Math.floor(cfg.total / 10);
      if (state.delivered === warm) flood.t0 = process.hrtime.bigint();
      if (state.delivered + (cfg.window ?? 256) <= cfg.total)
        out.self(40, RpcType.Fork, Buffer.alloc(cfg.size ?? 64));
      if (state.delivered === cfg.total) {
        const seconds = Number(process.hrtime.bigint() - flood.t0) / 1e9;
        say(
          `RATE ${JSON.stringify({ messages: cfg.total - warm, seconds, perSecond: (cfg.total - warm) / seconds })}`,
        );
        say(`DONE ${JSON.stringify(state)}`);
        if (cfg.exitWhenDone) process.exit(0);
      }
    },
  },
};
const flood = { t0: 0n };
const app = apps[cfg.role];
if (app === undefined) throw new Error(`unknown role ${cfg.role}`);

// ---------------------------------------------------------------------------------------------------------------
// The protocol engine.
let state = { app: app.init(), nextSeq: 0 };
let loaded = false;
let checkpointBytes = [];
const attached = new Set();

function connect(port) {
  return new Promise((resolve, reject) => {
    const deadline = Date.now() + 60_000;
    const attempt = () => {
      const s = net.connect({ port, host: "127.0.0.1", noDelay: true });
      s.once("connect", () => resolve(s));
      s.once("error", (e) => {
        s.destroy();
        if (Date.now() > deadline) reject(e);
        else setTimeout(attempt, 20);
      });
    };
    attempt();
  });
}

const toIc = await connect(cfg.receivePort);
const fromIc = await connect(cfg.sendPort);
for (const s of [toIc, fromIc]) {
  s.on("close", () => process.exit(0));
  s.on("error", () => process.exit(0));
}

let pending = [];
const out = {
  self: (methodId, rpcType, args) =>
    pending.push({ type: 0, destination: "", reserved: 0, methodId, rpcType, args }),
  remote: (dest, methodId, rpcType, args) => {
    if (!attached.has(dest)) {
      attached.add(dest);
      pending.push({ type: MessageType.AttachTo, destination: dest });
    }
    pending.push({ type: 0, destination: dest, reserved: 0, methodId, rpcType, args });
  },
};
function flush() {
  if (pending.length === 0) return;
  // Everything one record produced goes out in one write; RPCs as one RPCBatch (a hint the IC may use).
  const attaches = pending.filter((m) => m.type === MessageType.AttachTo);
  const rpcs = pending.filter((m) => m.type === 0);
  pending = [];
  const msgs = [...attaches];
  if (rpcs.length > 1) msgs.push({ type: MessageType.RPCBatch, messages: rpcs });
  else msgs.push(...rpcs);
  toIc.write(encodeMessages(msgs));
}
function sendCheckpoint() {
  const bytes = Buffer.from(JSON.stringify(state));
  toIc.write(encodeMessage({ type: MessageType.Checkpoint, length: BigInt(bytes.length) }));
  toIc.write(bytes);
}
function fail(msg) {
  say(`BINDING FATAL ${msg}`);
  process.exit(3);
}

function dispatch(m) {
  if (m.type === MessageType.InitialMessage) app.onInitialMessage(state.app, out);
  else if (m.type === 0) app.handle(state.app, m.methodId, m.rpcType, m.args, out);
  else if (m.type === MessageType.RPCBatch || m.type === MessageType.CountReplayableRPCBatch)
    m.messages.forEach(dispatch);
  else fail(`unexpected message type ${m.type} in a logged record`);
}

const decoder = new RecordDecoder((ev) => {
  if (ev.type === "checkpointChunk") {
    checkpointBytes.push(Buffer.from(ev.bytes));
    return;
  }
  if (ev.type === "checkpointEnd") {
    state = JSON.parse(Buffer.concat(checkpointBytes).toString());
    checkpointBytes = [];
    loaded = true;
    return;
  }
  const seq = ev.header.sequence;
  if (seq === -1) {
    for (const m of ev.messages) {
      if (m.type === MessageType.TakeBecomingPrimaryCheckpoint) {
        if (!loaded)
          toIc.write(encodeMessage({ type: MessageType.InitialMessage, data: Buffer.from("raw-binding") }));
        sendCheckpoint();
        say("READY-PRIMARY");
        app.onPrimary?.((bytes) => toIc.write(bytes));
      } else if (m.type === MessageType.TakeCheckpoint) {
        sendCheckpoint();
      } else fail(`unexpected control message ${m.type}`);
    }
    return;
  }
  if (seq < 0) return; // the recovery checkpoint record (−2): its bytes follow as chunks
  if (seq !== state.nextSeq) fail(`record ${seq} arrived, expected ${state.nextSeq}`);
  if (cfg.deliveries) appendFileSync(cfg.deliveries, `${seq} ${checkBytes(ev.payload).toString(16)}\n`);
  for (const m of ev.messages) dispatch(m);
  state.nextSeq = seq + 1;
  flush();
});
fromIc.on("data", (chunk) => {
  try {
    decoder.push(chunk);
  } catch (e) {
    fail(String(e));
  }
});
