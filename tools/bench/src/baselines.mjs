// Same-run physical baselines: what the disk and the loopback allow on this machine, right now.
// Every durable figure is reported as a ratio to these, because shared machines drift between runs.
import { mkdtemp, open, rm } from "node:fs/promises";
import net from "node:net";
import os from "node:os";
import path from "node:path";

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
};

/** Sequential write + fdatasync bandwidth (bytes/s) with `chunk`-byte writes, each followed by fdatasync. */
export async function diskBandwidth({
  dir = os.tmpdir(),
  chunk = 1 << 20,
  total = 256 << 20,
  runs = 3,
} = {}) {
  const d = await mkdtemp(path.join(dir, "imm-disk-"));
  const buf = Buffer.alloc(chunk, 0x5a);
  const rates = [];
  try {
    for (let r = 0; r < runs; r++) {
      const fh = await open(path.join(d, `f${r}`), "w");
      const t0 = process.hrtime.bigint();
      for (let written = 0; written < total; written += chunk) {
        await fh.write(buf, 0, chunk);
        await fh.datasync();
      }
      const s = Number(process.hrtime.bigint() - t0) / 1e9;
      await fh.close();
      rates.push(total / s);
    }
  } finally {
    await rm(d, { recursive: true, force: true });
  }
  return median(rates);
}

/** Latency of a lone small append + fdatasync (ms, median of `n`). */
export async function fdatasyncLatency({ dir = os.tmpdir(), n = 200 } = {}) {
  const d = await mkdtemp(path.join(dir, "imm-sync-"));
  const fh = await open(path.join(d, "f"), "w");
  const buf = Buffer.alloc(128, 1);
  const xs = [];
  try {
    for (let i = 0; i < n; i++) {
      const t0 = process.hrtime.bigint();
      await fh.write(buf, 0, buf.length);
      await fh.datasync();
      xs.push(Number(process.hrtime.bigint() - t0) / 1e6);
    }
  } finally {
    await fh.close();
    await rm(d, { recursive: true, force: true });
  }
  return median(xs);
}

/** Raw loopback TCP bandwidth (bytes/s) and round-trip time (ms, median). */
export async function loopback({ total = 512 << 20, chunk = 64 << 10, pings = 2000 } = {}) {
  const server = net.createServer((s) => {
    s.setNoDelay(true);
    s.on("data", (d) => {
      if (d.length <= 8) s.write(d);
    });
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  const port = server.address().port;
  const sock = net.connect({ port, host: "127.0.0.1", noDelay: true });
  await new Promise((r) => sock.once("connect", r));
  // RTT: 8-byte ping-pong
  const rtts = [];
  for (let i = 0; i < pings; i++) {
    const t0 = process.hrtime.bigint();
    sock.write(Buffer.alloc(8, 1));
    await new Promise((r) => sock.once("data", r));
    rtts.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  sock.destroy();
  // Bandwidth: a separate connection, sink counts bytes.
  let received = 0;
  let done;
  const finished = new Promise((r) => {
    done = r;
  });
  const sink = net.createServer((s) =>
    s.on("data", (d) => {
      received += d.length;
      if (received >= total) done();
    }),
  );
  await new Promise((r) => sink.listen(0, "127.0.0.1", r));
  const c = net.connect({ port: sink.address().port, host: "127.0.0.1" });
  await new Promise((r) => c.once("connect", r));
  const buf = Buffer.alloc(chunk, 7);
  const t0 = process.hrtime.bigint();
  for (let sent = 0; sent < total; sent += chunk) {
    if (!c.write(buf)) await new Promise((r) => c.once("drain", r));
  }
  await finished;
  const s = Number(process.hrtime.bigint() - t0) / 1e9;
  c.destroy();
  await new Promise((r) => sink.close(r));
  await new Promise((r) => server.close(r));
  return { bandwidth: total / s, rttMs: median(rtts) };
}

/**
 * The physical floor of a durable round trip A → B → A: four loopback hops (two 64-byte ping-pongs) and two
 * append + fdatasync, done raw and in sequence, `n` times. Returns the latency distribution (ms).
 */
export async function durableRoundTripFloor({ dir = os.tmpdir(), n = 2000 } = {}) {
  const server = net.createServer((s) => {
    s.setNoDelay(true);
    s.on("data", (d) => s.write(d));
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  const sock = net.connect({ port: server.address().port, host: "127.0.0.1", noDelay: true });
  await new Promise((r) => sock.once("connect", r));
  const d = await mkdtemp(path.join(dir, "imm-rtt-"));
  const fa = await open(path.join(d, "a"), "w");
  const fb = await open(path.join(d, "b"), "w");
  const msg = Buffer.alloc(64, 3);
  const hop2 = () =>
    new Promise((r) => {
      sock.once("data", r);
      sock.write(msg);
    });
  const xs = [];
  try {
    for (let i = 0; i < n; i++) {
      const t0 = process.hrtime.bigint();
      await hop2(); // A → B
      await fb.write(msg, 0, msg.length);
      await fb.datasync(); // B logs the call
      await hop2(); // B → A
      await fa.write(msg, 0, msg.length);
      await fa.datasync(); // A logs the result
      xs.push(Number(process.hrtime.bigint() - t0) / 1e6);
    }
  } finally {
    sock.destroy();
    await fa.close();
    await fb.close();
    await new Promise((r) => server.close(r));
    await rm(d, { recursive: true, force: true });
  }
  return xs;
}
