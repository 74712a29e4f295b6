/**
 * Known-answer tests: byte sequences written out by hand from the spec's tables
 * (client-protocol.md §Messages/§Log records, ambrosia-ic-reference.md §0 and §2.2), decoded and re-encoded.
 */
import { describe, expect, it } from "vitest";
import {
  CHECKPOINT_SEQUENCE,
  CONTROL_SEQUENCE,
  decodeMessage,
  decodeRecord,
  encodeMessage,
  encodeRecord,
  type Message,
  MessageType,
  RECORD_HEADER_SIZE,
  type RpcLayout,
  readRecordHeader,
  writeRecordHeader,
} from "../src/index.js";
import { expectWireError, hex, norm, refLE, refXxh64, toHex } from "./helpers.js";

const le8 = (v: bigint): string => toHex(Uint8Array.from(refLE(v, 8)));

/** `m` encodes to exactly `bytes`, and `bytes` decode to exactly `m`. */
function both(m: Message, bytes: string, layout: RpcLayout): void {
  const expected = bytes.replace(/\s+/g, "");
  expect(toHex(encodeMessage(m))).toBe(expected);
  const d = decodeMessage(hex(expected), 0, layout);
  expect(d.next).toBe(expected.length / 2);
  expect(norm(d.message)).toEqual(norm(m));
}

const u8 = (s: string): Uint8Array => hex(s);

describe("known answers: messages", () => {
  it("outgoing self-call RPC: [size][00][00 destLen][00 reserved][methodId zigzag][01 fork][args]", () => {
    // body = type + destLen + reserved + methodId + rpcType + 3 args = 8 → size zigzag 0x10; method 5 → 0x0a
    both(
      { type: 0, destination: "", reserved: 0, methodId: 5, rpcType: 1, args: u8("aabbcc") },
      "10 00 00 00 0a 01 aabbcc",
      "outgoing",
    );
    // Node's post method −1 → zigzag 0x01, no args
    both(
      { type: 0, destination: "", reserved: 0, methodId: -1, rpcType: 0, args: u8("") },
      "0a 00 00 00 01 00",
      "outgoing",
    );
    // method 200 → zigzag 400 = 0x190 → 90 03; impulse
    both(
      { type: 0, destination: "", reserved: 0, methodId: 200, rpcType: 2, args: u8("") },
      "0c 00 00 00 9003 02",
      "outgoing",
    );
  });

  it('outgoing RPC to "server"', () => {
    // body = 1 + 1 (destLen 6 → 0x0c) + 6 + 1 + 1 + 1 + 3 = 14 → 0x1c
    both(
      { type: 0, destination: "server", reserved: 0, methodId: 3, rpcType: 1, args: u8("010203") },
      "1c 00 0c 736572766572 00 06 01 010203",
      "outgoing",
    );
  });

  it("incoming RPC (as the IC forwards it, destination stripped), also a return value", () => {
    both(
      { type: 0, reserved: 0, methodId: 3, rpcType: 1, args: u8("010203") },
      "0e 00 00 06 01 010203",
      "incoming",
    );
    both({ type: 0, reserved: 1, methodId: -1, rpcType: 0, args: u8("ff") }, "0a 00 01 01 00 ff", "incoming");
  });

  it("AttachTo carries the name with no length prefix", () => {
    both({ type: MessageType.AttachTo, destination: "server" }, "0e 01 736572766572", "outgoing");
    both({ type: MessageType.AttachTo, destination: "é" }, "06 01 c3a9", "outgoing");
  });

  it("control messages are [02][type]", () => {
    for (const t of [2, 10, 11, 12, 15] as const) {
      both({ type: t }, `02 ${t.toString(16).padStart(2, "0")}`, "incoming");
    }
  });

  it("Checkpoint frame is [size][08][zigzag-long length]", () => {
    both({ type: MessageType.Checkpoint, length: 4n }, "04 08 08", "outgoing");
    both({ type: MessageType.Checkpoint, length: 0n }, "04 08 00", "outgoing");
    // 1000 → zigzag 2000 = 0x7d0 → d0 0f
    both({ type: MessageType.Checkpoint, length: 1000n }, "06 08 d00f", "outgoing");
    // 2^40 → zigzag 2^41 → 80 80 80 80 80 40 (beyond 32 bits)
    both({ type: MessageType.Checkpoint, length: 2n ** 40n }, "0e 08 8080808080 40", "outgoing");
  });

  it("a body of 64 bytes gets the 2-byte size 80 01 (zigzag, not plain LEB128 40)", () => {
    const data = new Uint8Array(63).map((_, i) => i);
    both({ type: MessageType.InitialMessage, data }, `8001 09 ${toHex(data)}`, "incoming");
  });

  it("Ping / PingReturn / InitialMessage carry their bytes raw", () => {
    both({ type: MessageType.Ping, data: u8("0102030405060708") }, "12 06 0102030405060708", "incoming");
    both({ type: MessageType.PingReturn, data: u8("") }, "02 07", "incoming");
    both({ type: MessageType.InitialMessage, data: u8("68656c6c6f") }, "0c 09 68656c6c6f", "outgoing");
  });

  it("Commit / ReplayFrom / TrimTo carry zigzag longs", () => {
    both({ type: MessageType.Commit, seq: 5n, replayableSeq: 3n }, "06 03 0a 06", "incoming");
    both({ type: MessageType.ReplayFrom, seq: -1n, replayableSeq: 0n }, "06 04 01 00", "incoming");
    both({ type: MessageType.TrimTo, seq: 64n }, "06 0e 8001", "incoming");
  });

  it("RPCBatch: [size][05][count] then count framed messages (outgoing, with destinations)", () => {
    both(
      {
        type: MessageType.RPCBatch,
        messages: [
          { type: 0, destination: "", reserved: 0, methodId: -1, rpcType: 0, args: u8("") },
          { type: 0, destination: "", reserved: 0, methodId: 5, rpcType: 1, args: u8("aabbcc") },
        ],
      },
      // body = 1 + 1 (count 2 → 04) + 6 + 9 = 17 → zigzag 34 = 0x22
      "22 05 04  0a0000000100  100000000a01aabbcc",
      "outgoing",
    );
  });

  it("CountReplayableRPCBatch: [size][0d][count][replayableCount] then the messages", () => {
    both(
      {
        type: MessageType.CountReplayableRPCBatch,
        replayableCount: 1,
        messages: [
          { type: 0, reserved: 0, methodId: 3, rpcType: 1, args: u8("010203") },
          { type: 0, reserved: 0, methodId: 1, rpcType: 2, args: u8("") },
        ],
      },
      // body = 1 + 1 (04) + 1 (02) + 8 + 5 = 16 → zigzag 32 = 0x20
      "20 0d 04 02  0e00000601010203  0800000202",
      "incoming",
    );
  });
});

describe("known answers: records", () => {
  const committer = 0x12345678;

  it("first-start control record: TakeBecomingPrimaryCheckpoint, length 26, sequence −1 — every header byte", () => {
    const check = refXxh64(u8("020b"));
    expect(check).toBe(0xda2d84cbc279f1c7n);
    const expected = `78563412 1a000000 ${le8(check)} ffffffffffffffff 020b`.replace(/\s+/g, "");
    expect(expected).toBe("785634121a000000c7f179c2cb842ddaffffffffffffffff020b");

    const rec = encodeRecord({
      committerId: committer,
      sequence: CONTROL_SEQUENCE,
      messages: [{ type: MessageType.TakeBecomingPrimaryCheckpoint }],
    });
    expect(rec.length).toBe(26);
    expect(toHex(rec.subarray(0, 4))).toBe("78563412"); // committer ID, IntFixed LE
    expect(toHex(rec.subarray(4, 8))).toBe("1a000000"); // length 26 incl. header
    expect(toHex(rec.subarray(8, 16))).toBe("c7f179c2cb842dda"); // xxHash64(02 0b), LE
    expect(toHex(rec.subarray(16, 24))).toBe("ffffffffffffffff"); // sequence −1
    expect(toHex(rec.subarray(24))).toBe("020b");
    expect(toHex(rec)).toBe(expected);

    const d = decodeRecord(hex(expected));
    expect(d.header).toEqual({ committerId: committer, length: 26, checkBytes: check, sequence: -1 });
    expect(d.messages).toEqual([{ type: 11 }]);
    expect(d.next).toBe(26);
    expect(toHex(d.payload)).toBe("020b");
  });

  it("every control record kind is [hdr: len 26, xxHash64(02 t), seq −1][02 t]", () => {
    for (const t of [2, 10, 11, 12, 15] as const) {
      const payload = Uint8Array.of(2, t);
      const expected = `78563412 1a000000 ${le8(refXxh64(payload))} ffffffffffffffff ${toHex(payload)}`;
      const rec = encodeRecord({ committerId: committer, sequence: -1, messages: [{ type: t }] });
      expect(toHex(rec)).toBe(expected.replace(/\s+/g, ""));
      expect(decodeRecord(rec).messages).toEqual([{ type: t }]);
    }
  });

  it("a 32-byte record carrying an 8-byte InitialMessage frame (logged record 0)", () => {
    // frame: size 7 → 0x0e, type 09, 6 bytes "v2.0.0"
    const payload = u8("0e09 76322e302e30");
    const expected = `78563412 20000000 ${le8(refXxh64(payload))} 0000000000000000 0e0976322e302e30`.replace(
      /\s+/g,
      "",
    );
    const rec = encodeRecord({
      committerId: committer,
      sequence: 0,
      messages: [{ type: MessageType.InitialMessage, data: new Uint8Array(Buffer.from("v2.0.0")) }],
    });
    expect(rec.length).toBe(32);
    expect(toHex(rec)).toBe(expected);
    const d = decodeRecord(hex(expected));
    expect(d.header.length).toBe(32);
    expect(d.header.sequence).toBe(0);
    expect(norm(d.messages)).toEqual([{ type: 9, data: Array.from(Buffer.from("v2.0.0")) }]);
  });

  it("decodes the demo's independently written record (committer 0x2a3b4c5d, InitialMessage 'hello')", () => {
    const bytes = hex("5d4c3b2a 1f000000 30c1d3e60d8e4285 0000000000000000 0c 09 68656c6c6f");
    expect(refXxh64(bytes.subarray(24))).toBe(0x85428e0de6d3c130n);
    const d = decodeRecord(bytes);
    expect(d.header).toEqual({
      committerId: 0x2a3b4c5d,
      length: 31,
      checkBytes: 0x85428e0de6d3c130n,
      sequence: 0,
    });
    expect(norm(d.messages)).toEqual([{ type: 9, data: Array.from(Buffer.from("hello")) }]);
  });

  it("the recovery-checkpoint record: sequence −2, check bytes 0, accepted with verification on", () => {
    const expected = "78563412 1b000000 0000000000000000 feffffffffffffff 040808".replace(/\s+/g, "");
    const rec = encodeRecord({
      committerId: committer,
      sequence: CHECKPOINT_SEQUENCE,
      messages: [{ type: MessageType.Checkpoint, length: 4n }],
    });
    expect(toHex(rec)).toBe(expected);
    const d = decodeRecord(hex(expected), 0, { verify: true });
    expect(d.header).toEqual({ committerId: committer, length: 27, checkBytes: 0n, sequence: -2 });
    expect(d.messages).toEqual([{ type: 8, length: 4n }]);
    // the raw checkpoint bytes follow outside the record: they are not part of it
    const withRaw = hex(`${expected}deadbeef`);
    expect(decodeRecord(withRaw).next).toBe(27);
  });

  it("a sequence −2 record with the right non-zero check bytes is accepted; with wrong non-zero ones it is rejected", () => {
    const payload = u8("040808");
    const good = hex(`78563412 1b000000 ${le8(refXxh64(payload))} feffffffffffffff 040808`);
    expect(decodeRecord(good).messages).toEqual([{ type: 8, length: 4n }]);
    const bad = hex("78563412 1b000000 0100000000000000 feffffffffffffff 040808");
    expectWireError(() => decodeRecord(bad), "BAD_CHECK_BYTES");
    const bad2 = hex(`78563412 1b000000 ${le8(refXxh64(payload) ^ 1n)} feffffffffffffff 040808`);
    expectWireError(() => decodeRecord(bad2), "BAD_CHECK_BYTES");
    // check bytes 0 are only a convention for −2: on a control (−1) or logged record they must verify
    expectWireError(
      () => decodeRecord(hex("78563412 1b000000 0000000000000000 ffffffffffffffff 040808")),
      "BAD_CHECK_BYTES",
    );
    expectWireError(
      () => decodeRecord(hex("78563412 1b000000 0000000000000000 0000000000000000 040808")),
      "BAD_CHECK_BYTES",
    );
  });

  it("writeRecordHeader/readRecordHeader put each field at its offset", () => {
    const buf = new Uint8Array(RECORD_HEADER_SIZE);
    writeRecordHeader(buf, 0, {
      committerId: -2,
      length: 0x01020304,
      checkBytes: 0xf1e2d3c4b5a69788n,
      sequence: 0x0a0b0c0d0e0f,
    });
    expect(toHex(buf)).toBe("feffffff" + "04030201" + "8897a6b5c4d3e2f1" + "0f0e0d0c0b0a0000");
    expect(readRecordHeader(buf, 0)).toEqual({
      committerId: -2,
      length: 0x01020304,
      checkBytes: 0xf1e2d3c4b5a69788n,
      sequence: 0x0a0b0c0d0e0f,
    });
  });
});
