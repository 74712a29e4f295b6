// The first-start and recovery sequences, checked byte by byte: the test is the binding, speaking raw bytes.
import { mkdtempSync, rmSync } from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { checkBytes, encodeMessage, encodeMessages, MessageType } from "@immortal/wire";
import { afterAll, describe, expect, it } from "vitest";
import { type Coordinator, createRegistration, FolderRegistry } from "../../src/index.js";
import { ports } from "../support/harness.js";
import { startTestCoordinator } from "../support/in-process.js";

/** Reads exactly `n` bytes from a socket (buffering what arrives beyond them for the next call). */
class ByteReader {
  private buf = Buffer.alloc(0);
  private want: { n: number; resolve: (b: Buffer) => void } | undefined;
  constructor(sock: net.Socket) {
    sock.on("data", (d: Buffer) => {
      this.buf = Buffer.concat([this.buf, d]);
      this.pump();
    });
  }
  private pump(): void {
    if (this.want && this.buf.length >= this.want.n) {
      const { n, resolve } = this.want;
      this.want = undefined;
      const out = this.buf.subarray(0, n);
      this.buf = this.buf.subarray(n);
      resolve(out);
    }
  }
  read(n: number): Promise<Buffer> {
    return new Promise((resolve, reject) => {
      this.want = { n, resolve };
      setTimeout(
        () => reject(new Error(`timed out reading ${n} bytes (have ${this.buf.length})`)),
        10_000,
      ).unref();
      this.pump();
    });
  }
  get buffered(): number {
    return this.buf.length;
  }
}

/** The bytes a record must have: header (committer, length, xxHash64, sequence) then payload. */
function expectedRecord(
  committerId: number,
  sequence: number,
  payload: Buffer,
  check = checkBytes(payload),
): Buffer {
  const h = Buffer.alloc(24);
  h.writeInt32LE(committerId, 0);
  h.writeInt32LE(24 + payload.length, 4);
  h.writeBigUInt64LE(check, 8);
  h.writeBigInt64LE(BigInt(sequence), 16);
  return Buffer.concat([h, payload]);
}

async function attach(p: {
  receivePort: number;
  sendPort: number;
}): Promise<{ toIc: net.Socket; reader: ByteReader; fromIc: net.Socket }> {
  const toIc = net.connect({ port: p.receivePort, host: "127.0.0.1" });
  await new Promise((r) => toIc.once("connect", r));
  const fromIc = net.connect({ port: p.sendPort, host: "::1" }); // the IPv6 loopback works too
  await new Promise((r) => fromIc.once("connect", r));
  return { toIc, fromIc, reader: new ByteReader(fromIc) };
}

describe("start-up sequences, byte by byte", () => {
  const root = mkdtempSync(path.join(os.tmpdir(), "imm-bytes-"));
  const p = ports();
  let ic: Coordinator;
  const out: string[] = [];
  afterAll(async () => {
    await ic?.stop();
    rmSync(root, { recursive: true, force: true });
  });

  it("first start, a self-call, then recovery replays the same bytes", async () => {
    const registry = FolderRegistry.open({ dir: path.join(root, "reg") });
    const logDir = path.join(root, "logs");
    await registry.put(createRegistration({ instanceName: "bytes", ...p, logDir }));
    ic = await startTestCoordinator({ root, registry, logDir, p }, "bytes", { out });
    expect(out).toEqual(["Ready"]);

    // --- First start -----------------------------------------------------------------------------------
    let b = await attach(p);
    const control = await b.reader.read(26);
    const committerId = control.readInt32LE(0);
    // [committer][26][xxHash64(02 0b)][−1] 02 0b
    expect(control).toEqual(expectedRecord(committerId, -1, Buffer.from([0x02, 0x0b])));
    expect(out).toContain("Connected!");

    const initial = encodeMessage({ type: MessageType.InitialMessage, data: Buffer.from("hi") });
    expect(Buffer.from(initial)).toEqual(Buffer.from([0x06, 0x09, 0x68, 0x69]));
    const state1 = Buffer.from("STATE-ONE");
    b.toIc.write(initial);
    b.toIc.write(encodeMessage({ type: MessageType.Checkpoint, length: BigInt(state1.length) }));
    b.toIc.write(state1);
    // Record 0 carries the InitialMessage frame exactly as sent.
    const rec0 = await b.reader.read(24 + initial.length);
    expect(rec0).toEqual(expectedRecord(committerId, 0, Buffer.from(initial)));

    // A self-call (destination length 0) comes back as record 1 in the incoming layout: destination stripped.
    b.toIc.write(
      encodeMessage({
        type: 0,
        destination: "",
        reserved: 0,
        methodId: 7,
        rpcType: 1,
        args: Buffer.from([1, 2, 3]),
      }),
    );
    const rpcIn = Buffer.from([0x0e, 0x00, 0x00, 0x0e, 0x01, 0x01, 0x02, 0x03]); // size 7, RPC, reserved, method 7, fork, args
    const rec1 = await b.reader.read(24 + rpcIn.length);
    expect(rec1).toEqual(expectedRecord(committerId, 1, rpcIn));
    // Our own instance name as destination is a self-call too.
    b.toIc.write(
      encodeMessage({
        type: 0,
        destination: "bytes",
        reserved: 0,
        methodId: 7,
        rpcType: 1,
        args: Buffer.from([4]),
      }),
    );
    const rpcIn2 = Buffer.from([0x0a, 0x00, 0x00, 0x0e, 0x01, 0x04]);
    const rec2 = await b.reader.read(24 + rpcIn2.length);
    expect(rec2).toEqual(expectedRecord(committerId, 2, rpcIn2));

    // --- The binding goes away; a new one recovers ---------------------------------------------------------
    const stopped = ic.sessionStopped();
    b.toIc.destroy();
    b.fromIc.destroy();
    await stopped;
    b = await attach(p);
    const ckptFrame = Buffer.from(
      encodeMessage({ type: MessageType.Checkpoint, length: BigInt(state1.length) }),
    );
    // Record −2 with check bytes 0 (as AMBROSIA sends it), then the raw checkpoint bytes outside the record.
    expect(await b.reader.read(24 + ckptFrame.length)).toEqual(
      expectedRecord(committerId, -2, ckptFrame, 0n),
    );
    expect(await b.reader.read(state1.length)).toEqual(state1);
    // The log, replayed byte-identically, then TakeBecomingPrimaryCheckpoint.
    expect(await b.reader.read(rec0.length)).toEqual(rec0);
    expect(await b.reader.read(rec1.length)).toEqual(rec1);
    expect(await b.reader.read(rec2.length)).toEqual(rec2);
    expect(await b.reader.read(26)).toEqual(control);
    const state2 = Buffer.from("STATE-TWO-AFTER-REPLAY");
    // The replayed self-call is regenerated by the binding: the coordinator must not log it again.
    b.toIc.write(
      encodeMessages([
        { type: 0, destination: "", reserved: 0, methodId: 7, rpcType: 1, args: Buffer.from([1, 2, 3]) },
        { type: 0, destination: "bytes", reserved: 0, methodId: 7, rpcType: 1, args: Buffer.from([4]) },
        { type: MessageType.Checkpoint, length: BigInt(state2.length) },
      ]),
    );
    b.toIc.write(state2);
    // A new self-call gets sequence 3.
    b.toIc.write(
      encodeMessage({
        type: 0,
        destination: "",
        reserved: 0,
        methodId: 9,
        rpcType: 2,
        args: Buffer.from([9]),
      }),
    );
    const rpcIn3 = Buffer.from([0x0a, 0x00, 0x00, 0x12, 0x02, 0x09]);
    expect(await b.reader.read(24 + rpcIn3.length)).toEqual(expectedRecord(committerId, 3, rpcIn3));
    await new Promise((r) => setTimeout(r, 100));
    expect(b.reader.buffered).toBe(0);

    // --- And once more: recovery now starts from the checkpoint taken after the first recovery ---------------
    const stopped2 = ic.sessionStopped();
    b.toIc.destroy();
    b.fromIc.destroy();
    await stopped2;
    b = await attach(p);
    const ckptFrame2 = Buffer.from(
      encodeMessage({ type: MessageType.Checkpoint, length: BigInt(state2.length) }),
    );
    expect(await b.reader.read(24 + ckptFrame2.length)).toEqual(
      expectedRecord(committerId, -2, ckptFrame2, 0n),
    );
    expect(await b.reader.read(state2.length)).toEqual(state2);
    expect(await b.reader.read(24 + rpcIn3.length)).toEqual(expectedRecord(committerId, 3, rpcIn3));
    expect(await b.reader.read(26)).toEqual(control);
    b.toIc.destroy();
    b.fromIc.destroy();
  });
});
