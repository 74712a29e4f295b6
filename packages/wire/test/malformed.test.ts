/**
 * Malformed input: every decoder failure is a typed WireError with the right code — never another
 * exception, never a hang. Byte strings are written by hand; fuzzing covers the rest.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  decodeMessage,
  decodeMessages,
  decodeRecord,
  encodeMessage,
  encodeMessages,
  encodeRecord,
  frameEnd,
  type Message,
  MessageType,
  NEED_MORE,
  RECORD_HEADER_SIZE,
  type RpcLayout,
  readRecordHeader,
  type WireErrorCode,
  writeIntFixed,
  writeLongFixed,
} from "../src/index.js";
import { expectWireError, hex, message, norm, onlyWireErrors, recordMessages, toHex } from "./helpers.js";

const layouts: RpcLayout[] = ["incoming", "outgoing"];

/** `bytes` (one frame) fails with `code` through decodeMessage and decodeMessages, in the given layouts. */
function rejects(bytes: string, code: WireErrorCode, ls: RpcLayout[] = layouts, maxFrameSize?: number): void {
  const b = hex(bytes);
  for (const layout of ls) {
    expectWireError(() => decodeMessage(b, 0, layout, b.length, maxFrameSize), code);
    expectWireError(() => decodeMessages(b, layout, 0, b.length, maxFrameSize), code);
    // the same frame after a valid one: the error is still typed (and not masked by the first frame)
    const after = new Uint8Array(2 + b.length);
    after.set([0x02, 0x02], 0);
    after.set(b, 2);
    expectWireError(() => decodeMessages(after, layout, 0, after.length, maxFrameSize), code);
  }
}

/** Frames `body` (type byte + data, as hex) with its zigzag size prefix. */
function frame(body: string): string {
  return sizePrefix(hex(body).length) + body.replace(/\s+/g, "");
}
/** The ZigZagInt encoding of a (positive) size, as hex. */
function sizePrefix(n: number): string {
  let z = n * 2;
  let s = "";
  while (z >= 0x80) {
    s += ((z & 0x7f) | 0x80).toString(16).padStart(2, "0");
    z = Math.floor(z / 128);
  }
  return s + z.toString(16).padStart(2, "0");
}

describe("malformed frames", () => {
  it("truncated frames → TRUNCATED", () => {
    rejects("0e 00 00", "TRUNCATED"); // declares 7 bytes, holds 2
    rejects("80", "TRUNCATED"); // size varint cut short
    expectWireError(() => decodeMessage(new Uint8Array(0), 0, "incoming"), "TRUNCATED");
    expect(decodeMessages(new Uint8Array(0), "incoming")).toEqual([]);
    expectWireError(() => decodeMessages(hex("020b 0e00"), "incoming"), "TRUNCATED");
  });

  it("fields running past the end of a complete frame → TRUNCATED", () => {
    rejects(frame("00"), "TRUNCATED", ["incoming"]); // RPC without reserved byte
    rejects(frame("00 00"), "TRUNCATED", ["incoming"]); // without method ID
    rejects(frame("00 00 80"), "TRUNCATED", ["incoming"]); // method ID varint cut by the frame end
    rejects(frame("00 00 02"), "TRUNCATED", ["incoming"]); // without RPC type
    rejects(frame("00"), "TRUNCATED", ["outgoing"]); // without destination length
    rejects(frame("00 14 6162"), "TRUNCATED", ["outgoing"]); // destination length 10, 2 bytes there
    rejects(frame("03 02"), "TRUNCATED"); // Commit without replayableSeq
    rejects(frame("04"), "TRUNCATED"); // ReplayFrom without anything
    rejects(frame("0e 80"), "TRUNCATED"); // TrimTo varint cut
    rejects(frame("08"), "TRUNCATED"); // Checkpoint without length
    rejects(frame("05"), "TRUNCATED"); // batch without count
    rejects(frame("0d 02"), "TRUNCATED"); // count-replayable batch without replayable count
  });

  it("an overlong or out-of-range size varint → VARINT_TOO_LONG / OUT_OF_RANGE", () => {
    rejects("8080808080 00", "VARINT_TOO_LONG");
    rejects("ffffffffff 01", "VARINT_TOO_LONG");
    rejects("8080808010", "OUT_OF_RANGE");
    expectWireError(() => frameEnd(hex("8080808080"), 0, 5), "VARINT_TOO_LONG");
  });

  it("a frame size beyond maxFrameSize → FRAME_TOO_LARGE, before the body has arrived", () => {
    // size 1000 → zigzag 2000 → d0 0f; no body bytes at all
    rejects("d00f", "FRAME_TOO_LARGE", layouts, 100);
    expectWireError(() => frameEnd(hex("d00f"), 0, 2, 100), "FRAME_TOO_LARGE");
    // the default limit (256 MiB): int32 max as a size, nothing behind it
    rejects("feffffff0f", "FRAME_TOO_LARGE");
    // exactly at the limit is fine, one above is not
    const at = encodeMessage({ type: MessageType.InitialMessage, data: new Uint8Array(99) }); // size 100
    expect(decodeMessage(at, 0, "incoming", at.length, 100).next).toBe(at.length);
    const over = encodeMessage({ type: MessageType.InitialMessage, data: new Uint8Array(100) }); // size 101
    expectWireError(() => decodeMessage(over, 0, "incoming", over.length, 100), "FRAME_TOO_LARGE");
    expect(frameEnd(over.subarray(0, 2), 0, 2, 101)).toBe(NEED_MORE);
  });

  it("frames inside a batch are held to the same limit", () => {
    const batch = encodeMessage({
      type: MessageType.RPCBatch,
      messages: [{ type: MessageType.Ping, data: new Uint8Array(200) }],
    });
    expect(decodeMessage(batch, 0, "incoming").message.type).toBe(5);
    // the outer frame (204 bytes) fits a 250-byte limit; the inner frame (201) does not fit a 150-byte one
    expectWireError(() => decodeMessage(batch, 0, "incoming", batch.length, 150), "FRAME_TOO_LARGE");
  });

  it("a negative frame size → NEGATIVE_LENGTH", () => {
    rejects("01", "NEGATIVE_LENGTH");
    rejects("03 00 00", "NEGATIVE_LENGTH");
    rejects("ffffffff0f", "NEGATIVE_LENGTH");
    expectWireError(() => frameEnd(hex("01"), 0, 1), "NEGATIVE_LENGTH");
  });

  it("a frame size of 0 → MALFORMED", () => {
    rejects("00", "MALFORMED");
    rejects("00 0b", "MALFORMED");
  });

  it("an unknown type byte 16..255 → UNKNOWN_TYPE", () => {
    for (let t = 16; t < 256; t++) {
      const tt = t.toString(16).padStart(2, "0");
      rejects(`02 ${tt}`, "UNKNOWN_TYPE");
      rejects(`06 ${tt} 0000`, "UNKNOWN_TYPE");
    }
  });

  it("negative destination length, batch count, replayable count, checkpoint length → NEGATIVE_LENGTH", () => {
    rejects(frame("00 01 00 02 01"), "NEGATIVE_LENGTH", ["outgoing"]);
    rejects(frame("00 ffffffff0f 00 02 01"), "NEGATIVE_LENGTH", ["outgoing"]);
    rejects(frame("05 01"), "NEGATIVE_LENGTH");
    rejects(frame("05 01 0202 0202"), "NEGATIVE_LENGTH");
    rejects(frame("0d 00 01"), "NEGATIVE_LENGTH"); // replayable count −1
    rejects(frame("08 01"), "NEGATIVE_LENGTH");
    rejects(frame("08 ffffffffffffffffff01"), "NEGATIVE_LENGTH"); // int64 min
  });

  it("a negative count in a CountReplayableRPCBatch → NEGATIVE_LENGTH (not MALFORMED)", () => {
    rejects(frame("0d 01 00"), "NEGATIVE_LENGTH"); // count −1, replayable 0
    rejects(frame("0d 03 00 0206"), "NEGATIVE_LENGTH"); // count −2
  });

  it("batch count smaller than the items (trailing bytes) → MALFORMED", () => {
    const rpc = toHex(
      encodeMessage({ type: 0, reserved: 0, methodId: 1, rpcType: 1, args: new Uint8Array(5) }),
    );
    rejects(frame(`05 02 ${rpc} ${rpc}`), "MALFORMED", ["incoming"]); // count 1, two items
    rejects(frame(`05 00 ${rpc}`), "MALFORMED", ["incoming"]); // count 0, one item
    rejects(frame(`0d 02 00 ${rpc} ${rpc}`), "MALFORMED", ["incoming"]);
    rejects(frame("05 00 00"), "MALFORMED"); // a stray byte
  });

  it("batch count larger than the items could fill → MALFORMED", () => {
    rejects(frame("05 04 0206"), "MALFORMED"); // count 2, one empty Ping
    rejects(frame("05 02"), "MALFORMED"); // count 1, nothing
    rejects(frame("05 feffffff07"), "MALFORMED"); // count 2^31 − 1 in a tiny frame: refused without allocating
  });

  it("batch count larger than the items → MALFORMED also when the items are large", () => {
    // The batch frame is complete, so a missing item is a count mismatch (MALFORMED, as documented in
    // errors.ts), not input that ended early — and the code must not depend on how big the items are.
    const rpc = toHex(
      encodeMessage({ type: 0, reserved: 0, methodId: 1, rpcType: 1, args: new Uint8Array(5) }),
    );
    rejects(frame(`05 04 ${rpc}`), "MALFORMED", ["incoming"]); // count 2, one 10-byte item
    rejects(frame(`0d 06 00 ${rpc} ${rpc}`), "MALFORMED", ["incoming"]); // count 3, two items
  });

  it("replayable count above the batch count → MALFORMED", () => {
    rejects(frame("0d 02 04 0206"), "MALFORMED");
    rejects(frame("0d 00 02"), "MALFORMED");
  });

  it("non-batchable messages (a nested batch, AttachTo, controls …) inside a batch → UNKNOWN_TYPE", () => {
    const inner = [
      "0405 00",
      "060d 0000",
      "0401 61",
      "020b",
      "0202",
      "0409 00",
      "0408 08",
      "0603 0202",
      "040e 02",
    ];
    for (const i of inner) {
      rejects(frame(`05 02 ${i}`), "UNKNOWN_TYPE");
      rejects(frame(`0d 02 00 ${i}`), "UNKNOWN_TYPE");
    }
    rejects(frame("05 02 0225"), "UNKNOWN_TYPE"); // type 37
  });

  it("RPC type 3..255 → MALFORMED", () => {
    for (let t = 3; t < 256; t++) {
      const tt = t.toString(16).padStart(2, "0");
      rejects(frame(`00 00 02 ${tt} 0102`), "MALFORMED", ["incoming"]);
      rejects(frame(`00 00 00 02 ${tt}`), "MALFORMED", ["outgoing"]);
      rejects(frame(`05 02 ${frame(`00 00 02 ${tt}`)}`), "MALFORMED", ["incoming"]);
    }
  });

  it("invalid UTF-8 in a destination or AttachTo name → MALFORMED", () => {
    const bad = [
      "ff",
      "c328",
      "c0af",
      "eda080",
      "f4908080",
      "e282",
      "80",
      "61 ff 62",
      `${"61".repeat(40)} ff`,
      `${"61".repeat(40)} e282`,
    ];
    for (const name of bad) {
      const len = hex(name).length;
      rejects(frame(`00 ${sizePrefix(len)} ${name} 00 02 01`), "MALFORMED", ["outgoing"]);
      rejects(frame(`01 ${name}`), "MALFORMED");
    }
  });

  it("trailing bytes after fixed-shape messages → MALFORMED", () => {
    rejects(frame("02 00"), "MALFORMED"); // control message with data
    rejects(frame("0b 0b"), "MALFORMED");
    rejects(frame("0f 00"), "MALFORMED");
    rejects(frame("03 02 02 00"), "MALFORMED"); // Commit
    rejects(frame("04 02 02 00"), "MALFORMED"); // ReplayFrom
    rejects(frame("0e 02 00"), "MALFORMED"); // TrimTo
    rejects(frame("08 08 00"), "MALFORMED"); // Checkpoint
  });

  it("varints inside frames are validated too", () => {
    rejects(frame("08 ffffffffffffffffff02"), "OUT_OF_RANGE"); // Checkpoint length > 64 bits
    rejects(frame("08 ffffffffffffffffffff01"), "VARINT_TOO_LONG");
    rejects(frame("00 00 8080808080 01"), "VARINT_TOO_LONG", ["incoming"]); // method ID
    rejects(frame("00 00 8080808070 01"), "OUT_OF_RANGE", ["incoming"]);
  });
});

describe("encoder refusals", () => {
  const enc = (m: unknown) => () => encodeMessage(m as Message);
  it("refuses values the wire cannot carry, with typed errors", () => {
    const rpc = { type: 0, reserved: 0, methodId: 1, rpcType: 1, args: new Uint8Array(0) };
    expectWireError(enc({ ...rpc, rpcType: 3 }), "MALFORMED");
    expectWireError(enc({ ...rpc, reserved: 256 }), "OUT_OF_RANGE");
    expectWireError(enc({ ...rpc, reserved: -1 }), "OUT_OF_RANGE");
    expectWireError(enc({ ...rpc, methodId: 2 ** 31 }), "OUT_OF_RANGE");
    expectWireError(enc({ ...rpc, methodId: 0.5 }), "OUT_OF_RANGE");
    expectWireError(enc({ type: 8, length: -1n }), "NEGATIVE_LENGTH");
    expectWireError(enc({ type: 8, length: 2n ** 63n }), "OUT_OF_RANGE");
    expectWireError(enc({ type: 3, seq: 2n ** 63n, replayableSeq: 0n }), "OUT_OF_RANGE");
    expectWireError(enc({ type: 14, seq: -(2n ** 63n) - 1n }), "OUT_OF_RANGE");
    expectWireError(enc({ type: 16 }), "UNKNOWN_TYPE");
    expectWireError(enc({ type: 255 }), "UNKNOWN_TYPE");
    expectWireError(enc({ type: 13, replayableCount: 2, messages: [rpc] }), "OUT_OF_RANGE");
    expectWireError(enc({ type: 13, replayableCount: -1, messages: [rpc] }), "OUT_OF_RANGE");
    expectWireError(enc({ type: 5, messages: [{ type: 5, messages: [] }] }), "UNKNOWN_TYPE");
    expectWireError(enc({ type: 5, messages: [{ type: 2 }] }), "UNKNOWN_TYPE");
  });
});

describe("malformed records", () => {
  const header = (length: number, seq = 0n, check = 0n, id = 1): Uint8Array => {
    const b = new Uint8Array(RECORD_HEADER_SIZE);
    writeIntFixed(b, 0, id);
    writeIntFixed(b, 4, length);
    writeLongFixed(b, 8, check);
    writeLongFixed(b, 16, seq);
    return b;
  };

  it("a record length below 24 → BAD_RECORD_LENGTH", () => {
    for (let len = 0; len < 24; len++) {
      const b = new Uint8Array(64);
      b.set(header(len));
      expectWireError(() => readRecordHeader(b, 0), "BAD_RECORD_LENGTH");
      expectWireError(() => decodeRecord(b), "BAD_RECORD_LENGTH");
    }
  });

  it("a negative record length → NEGATIVE_LENGTH (also AMBROSIA's on-disk −len−1 form)", () => {
    for (const len of [-1, -27, -0x80000000]) {
      expectWireError(() => decodeRecord(header(len)), "NEGATIVE_LENGTH");
    }
  });

  it("a record beyond maxRecordSize → FRAME_TOO_LARGE, with only the header present", () => {
    expectWireError(() => decodeRecord(header(1000), 0, { maxRecordSize: 999 }), "FRAME_TOO_LARGE");
    expectWireError(() => readRecordHeader(header(1000), 0, 999), "FRAME_TOO_LARGE");
    expectWireError(() => decodeRecord(header(0x7fffffff)), "FRAME_TOO_LARGE"); // default 256 MiB
    const rec = encodeRecord({ committerId: 1, sequence: 0, payload: new Uint8Array(76) }); // 100 bytes
    // at the limit the length passes; the all-zero payload then fails as a message (size 0), not as too large
    expectWireError(() => decodeRecord(rec, 0, { maxRecordSize: 100 }), "MALFORMED");
    expectWireError(() => decodeRecord(rec, 0, { maxRecordSize: 99 }), "FRAME_TOO_LARGE");
  });

  it("a record cut short → TRUNCATED (at every length)", () => {
    fc.assert(
      fc.property(recordMessages, (ms) => {
        const rec = encodeRecord({ committerId: 9, sequence: 1, messages: ms });
        for (let k = 0; k < rec.length; k += Math.max(1, Math.floor(rec.length / 64))) {
          expectWireError(() => decodeRecord(rec.slice(0, k)), "TRUNCATED");
        }
        expectWireError(() => decodeRecord(rec.slice(0, rec.length - 1)), "TRUNCATED");
      }),
      { numRuns: 100 },
    );
    expectWireError(() => readRecordHeader(new Uint8Array(23), 0), "TRUNCATED");
  });

  it("a sequence ID beyond the safe-integer range → OUT_OF_RANGE", () => {
    expectWireError(() => decodeRecord(header(24, 2n ** 53n)), "OUT_OF_RANGE");
    expectWireError(() => decodeRecord(header(24, -(2n ** 63n))), "OUT_OF_RANGE");
  });

  it("a correctly hashed payload that is not valid messages fails with the message error", () => {
    const cases: [string, WireErrorCode][] = [
      ["020b 0e00", "TRUNCATED"],
      ["0210", "UNKNOWN_TYPE"],
      ["00", "MALFORMED"],
      ["01", "NEGATIVE_LENGTH"],
      ["08 00 00 02 03", "MALFORMED"], // incoming RPC with rpc type 3
    ];
    for (const [payload, code] of cases) {
      const rec = encodeRecord({ committerId: 1, sequence: 0, payload: hex(payload) });
      expectWireError(() => decodeRecord(rec), code);
    }
  });

  it("the bad-check-bytes error names the record and is typed", () => {
    const rec = new Uint8Array(encodeRecord({ committerId: 1, sequence: 42, messages: [{ type: 2 }] }));
    rec[25]! ^= 0x40;
    const e = expectWireError(() => decodeRecord(rec), "BAD_CHECK_BYTES");
    expect(e.message).toContain("record 42");
    expect(e.name).toBe("WireError");
  });
});

describe("fuzz: arbitrary bytes never produce anything but a value or a WireError", () => {
  const limits = fc.constantFrom(undefined, 16, 300);

  it("decodeMessages / decodeMessage / frameEnd on random bytes (both layouts)", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), limits, (bytes, max) => {
        for (const layout of layouts) {
          onlyWireErrors(() => decodeMessages(bytes, layout, 0, bytes.length, max));
          onlyWireErrors(() => decodeMessage(bytes, 0, layout, bytes.length, max));
        }
        onlyWireErrors(() => frameEnd(bytes, 0, bytes.length, max));
      }),
      { numRuns: 3000 },
    );
  });

  it("random frames with a valid size prefix and a plausible type byte (both layouts)", () => {
    const body = fc.tuple(fc.integer({ min: 0, max: 18 }), fc.uint8Array({ maxLength: 60 }));
    fc.assert(
      fc.property(fc.array(body, { minLength: 1, maxLength: 4 }), (bodies) => {
        const bytes = hex(bodies.map(([t, d]) => frame(t.toString(16).padStart(2, "0") + toHex(d))).join(""));
        for (const layout of layouts) {
          onlyWireErrors(() => {
            const ms = decodeMessages(bytes, layout);
            // whatever decodes re-encodes and decodes to the same messages
            expect(norm(decodeMessages(encodeMessages(ms), layout))).toEqual(norm(ms));
          });
        }
      }),
      { numRuns: 3000 },
    );
  });

  it("mutated and truncated valid streams (both layouts)", () => {
    fc.assert(
      fc.property(
        fc.array(message("outgoing"), { minLength: 1, maxLength: 5 }),
        fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 4 }),
        fc.nat(),
        (ms, edits, cut) => {
          const bytes = new Uint8Array(encodeMessages(ms));
          for (const [at, v] of edits) bytes[at % bytes.length] = v;
          const stream = bytes.subarray(0, bytes.length - (cut % 3 === 0 ? cut % bytes.length : 0));
          for (const layout of layouts) onlyWireErrors(() => decodeMessages(stream, layout));
        },
      ),
      { numRuns: 1500 },
    );
  });

  it("decodeRecord on random bytes, on random hashed payloads, and on mutated records", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 120 }), (bytes) => {
        onlyWireErrors(() => decodeRecord(bytes));
        onlyWireErrors(() => decodeRecord(bytes, 0, { verify: false, maxRecordSize: 100 }));
      }),
      { numRuns: 2000 },
    );
    fc.assert(
      fc.property(
        fc.uint8Array({ maxLength: 120 }),
        int32ish,
        fc.constantFrom<RpcLayout>("incoming", "outgoing"),
        (payload, seq, layout) => {
          // valid header and check bytes: the payload itself is what gets fuzzed
          const rec = encodeRecord({ committerId: 3, sequence: seq, payload });
          onlyWireErrors(() => decodeRecord(rec, 0, { layout }));
        },
      ),
      { numRuns: 2000 },
    );
    fc.assert(
      fc.property(
        recordMessages,
        fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 3 }),
        fc.boolean(),
        (ms, edits, verify) => {
          const rec = new Uint8Array(encodeRecord({ committerId: 3, sequence: 0, messages: ms }));
          for (const [at, v] of edits) rec[at % rec.length] = v;
          onlyWireErrors(() => decodeRecord(rec, 0, { verify }));
        },
      ),
      { numRuns: 1500 },
    );
  });
});

const int32ish = fc.integer({ min: -2, max: 1000 });
