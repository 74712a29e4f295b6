import {
  encodeMessage,
  encodeRecord,
  MessageType,
  RECORD_HEADER_SIZE,
  WireError,
  type WireErrorCode,
  writeIntFixed,
} from "@immortal/wire";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { MessageDecoder, RecordDecoder } from "../src/index.js";
import {
  type DecoderSpec,
  decodeChunks,
  encodeMessageStream,
  encodeRecordStream,
  messageItemArb,
  normalizeEvents,
  oneByteChunks,
  recordItemArb,
  splitAt,
} from "./helpers.js";

const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ""), "hex");

/** Decodes `buf` whole and one byte at a time; both must fail with `code`. */
function expectCode(spec: DecoderSpec, buf: Uint8Array, code: WireErrorCode): void {
  for (const chunks of [[buf], oneByteChunks(buf)]) {
    const out = decodeChunks(spec, chunks);
    expect(out.error).toBeInstanceOf(WireError);
    expect((out.error as WireError).code).toBe(code);
  }
}

const M = { mode: "messages" } as const;
const R = { mode: "records" } as const;

describe("malformed message streams", () => {
  it("a frame cut short is TRUNCATED at end()", () => {
    const frame = encodeMessage({ type: MessageType.InitialMessage, data: Buffer.from("abcdef") });
    for (let n = 1; n < frame.length; n++) expectCode(M, frame.subarray(0, n), "TRUNCATED");
  });

  it("a size varint longer than 5 bytes is VARINT_TOO_LONG", () => {
    expectCode(M, hex("80 80 80 80 80 01"), "VARINT_TOO_LONG");
  });

  it("a size varint with bits beyond 32 is OUT_OF_RANGE", () => {
    expectCode(M, hex("ff ff ff ff 7f"), "OUT_OF_RANGE");
  });

  it("a negative size is NEGATIVE_LENGTH; size 0 is MALFORMED", () => {
    expectCode(M, hex("01 02"), "NEGATIVE_LENGTH"); // zig-zag 1 = −1
    expectCode(M, hex("00 02"), "MALFORMED");
  });

  it("a size beyond the limit is refused from its prefix alone, before any body is buffered", () => {
    const dec = new MessageDecoder(() => {}, { maxFrameSize: 1000 });
    // zig-zag(1001) = 2002 = 0xd2 0x0f
    expect(() => dec.push(hex("d2"))).not.toThrow();
    expect(dec.bufferedBytes).toBe(1);
    expect(() => dec.push(hex("0f"))).toThrow(expect.objectContaining({ code: "FRAME_TOO_LARGE" }));
    expect(dec.bufferedBytes).toBeLessThanOrEqual(2);
    // Default limit: a 2 GiB − 1 declared size fails at once, with nothing but the prefix held.
    expectCode(M, hex("fe ff ff ff 0f 00"), "FRAME_TOO_LARGE");
  });

  it("an unknown type byte is UNKNOWN_TYPE", () => {
    for (const t of [16, 99, 255]) expectCode(M, Buffer.from([0x02, t]), "UNKNOWN_TYPE");
    // A Checkpoint may not stand inside a batch either.
    expectCode(M, hex("0a 05 02 04 08 00"), "UNKNOWN_TYPE");
  });

  it("a negative checkpoint length is NEGATIVE_LENGTH", () => {
    expectCode(M, hex("04 08 01"), "NEGATIVE_LENGTH"); // size 2, type 8, zig-zag 1 = −1
  });

  it("input ending inside checkpoint bytes is TRUNCATED", () => {
    const head = encodeMessage({ type: MessageType.Checkpoint, length: 10n });
    expectCode(M, Buffer.concat([head, Buffer.alloc(9)]), "TRUNCATED");
  });

  it("an RPC with an overlong method-ID varint is VARINT_TOO_LONG", () => {
    // incoming layout: [size][0][reserved][methodId…]
    expectCode(
      { mode: "messages", layout: "incoming" },
      hex("10 00 00 80 80 80 80 80 01 00"),
      "VARINT_TOO_LONG",
    );
  });
});

describe("malformed record streams", () => {
  const rec = encodeRecord({
    committerId: 9,
    sequence: 3,
    messages: [{ type: MessageType.RPC, reserved: 0, methodId: 1, rpcType: 1, args: Buffer.from("payload") }],
  });

  it("a record cut short (inside the header or the payload) is TRUNCATED at end()", () => {
    for (let n = 1; n < rec.length; n++) expectCode(R, rec.subarray(0, n), "TRUNCATED");
  });

  it("position marks where a torn tail or a bad record begins (what a log reader truncates to)", () => {
    const torn = new RecordDecoder(() => {});
    torn.push(Buffer.concat([rec, rec, rec.subarray(0, 30)]));
    expect(() => torn.end()).toThrow(expect.objectContaining({ code: "TRUNCATED" }));
    expect(torn.position).toBe(2 * rec.length);

    const bad = Buffer.from(rec);
    bad[bad.length - 1] = (bad[bad.length - 1] ?? 0) ^ 1;
    for (const chunks of [[Buffer.concat([rec, bad, rec])], oneByteChunks(Buffer.concat([rec, bad, rec]))]) {
      const dec = new RecordDecoder(() => {});
      expect(() => {
        for (const c of chunks) dec.push(c);
      }).toThrow(expect.objectContaining({ code: "BAD_CHECK_BYTES" }));
      expect(dec.position).toBe(rec.length);
    }
  });

  it("wrong check bytes are BAD_CHECK_BYTES, unless verification is off", () => {
    const bad = Buffer.from(rec);
    bad[8] = (bad[8] ?? 0) ^ 1;
    expectCode(R, bad, "BAD_CHECK_BYTES");
    const flipped = Buffer.from(rec);
    flipped[flipped.length - 1] = (flipped[flipped.length - 1] ?? 0) ^ 0x40;
    expectCode(R, flipped, "BAD_CHECK_BYTES");
    expect(decodeChunks({ mode: "records", verify: false }, [bad]).error).toBeUndefined();
  });

  it("a record length below the header size is BAD_RECORD_LENGTH; a negative one NEGATIVE_LENGTH", () => {
    const h = Buffer.alloc(RECORD_HEADER_SIZE);
    writeIntFixed(h, 4, 23);
    expectCode(R, h, "BAD_RECORD_LENGTH");
    writeIntFixed(h, 4, -5);
    expectCode(R, h, "NEGATIVE_LENGTH");
  });

  it("a record beyond maxRecordSize is refused from its header, before its body is buffered", () => {
    const h = Buffer.alloc(RECORD_HEADER_SIZE);
    writeIntFixed(h, 4, 0x7fffffff);
    const dec = new RecordDecoder(() => {});
    expect(() => dec.push(h)).toThrow(expect.objectContaining({ code: "FRAME_TOO_LARGE" }));
    expect(dec.bufferedBytes).toBeLessThanOrEqual(RECORD_HEADER_SIZE);
    const small = new RecordDecoder(() => {}, { maxRecordSize: rec.length - 1 });
    expect(() => small.push(rec)).toThrow(expect.objectContaining({ code: "FRAME_TOO_LARGE" }));
  });

  it("an unknown message type inside a record is UNKNOWN_TYPE", () => {
    expectCode(
      R,
      encodeRecord({ committerId: 1, sequence: 0, payload: Buffer.from([0x02, 0x20]) }),
      "UNKNOWN_TYPE",
    );
  });

  it("a payload that ends inside a message is TRUNCATED", () => {
    expectCode(
      R,
      encodeRecord({ committerId: 1, sequence: 0, payload: Buffer.from([0x08, 0x09]) }),
      "TRUNCATED",
    );
  });

  it("two Checkpoint messages in one record are MALFORMED (their bytes could not be told apart)", () => {
    const two = encodeRecord({
      committerId: 1,
      sequence: -2,
      messages: [
        { type: MessageType.Checkpoint, length: 1n },
        { type: MessageType.Checkpoint, length: 1n },
      ],
    });
    expectCode(R, Buffer.concat([two, Buffer.alloc(2)]), "MALFORMED");
  });

  it("a sequence ID beyond the safe-integer range is OUT_OF_RANGE", () => {
    const big = Buffer.from(rec);
    big.writeBigInt64LE(1n << 60n, 16);
    expectCode({ mode: "records", verify: false }, big, "OUT_OF_RANGE");
  });
});

describe("fuzz: random and mutated bytes give events or a WireError, never anything else", () => {
  const specs: DecoderSpec[] = [
    { mode: "messages" },
    { mode: "messages", layout: "incoming", maxFrameSize: 64 },
    { mode: "records" },
    { mode: "records", verify: false, maxRecordSize: 200 },
  ];

  /** Decoding must not depend on chunking: same events, same error code. */
  function checkConsistent(spec: DecoderSpec, buf: Uint8Array, cuts: number[]): void {
    const whole = decodeChunks(spec, [buf]);
    if (whole.error !== undefined) expect(whole.error).toBeInstanceOf(WireError);
    for (const chunks of [splitAt(buf, cuts), oneByteChunks(buf)]) {
      const split = decodeChunks(spec, chunks);
      if (split.error !== undefined) expect(split.error).toBeInstanceOf(WireError);
      expect((split.error as WireError | undefined)?.code).toBe((whole.error as WireError | undefined)?.code);
      expect(normalizeEvents(split.events)).toEqual(normalizeEvents(whole.events));
    }
  }

  it("random bytes", () => {
    fc.assert(
      fc.property(
        fc.constantFrom(...specs),
        fc.uint8Array({ maxLength: 300 }),
        fc.array(fc.nat(), { maxLength: 10 }),
        checkConsistent,
      ),
      { numRuns: 2000 },
    );
  });

  it("valid message streams with a few bytes changed", () => {
    fc.assert(
      fc.property(
        fc.array(messageItemArb("outgoing"), { minLength: 1, maxLength: 10 }),
        fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 3 }),
        fc.array(fc.nat(), { maxLength: 10 }),
        fc.boolean(),
        (items, edits, cuts, truncate) => {
          let buf: Uint8Array = Buffer.from(encodeMessageStream(items));
          for (const [at, v] of edits) buf[at % buf.length] = v;
          if (truncate) buf = buf.subarray(0, (edits[0]?.[0] ?? 0) % (buf.length + 1));
          checkConsistent({ mode: "messages" }, buf, cuts);
        },
      ),
      { numRuns: 800 },
    );
  });

  it("valid record streams with a few bytes changed", () => {
    fc.assert(
      fc.property(
        fc.array(recordItemArb, { minLength: 1, maxLength: 5 }),
        fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 3 }),
        fc.array(fc.nat(), { maxLength: 10 }),
        fc.boolean(),
        (items, edits, cuts, verify) => {
          const buf = Buffer.from(encodeRecordStream(items));
          for (const [at, v] of edits) buf[at % buf.length] = v;
          checkConsistent({ mode: "records", verify }, buf, cuts);
        },
      ),
      { numRuns: 800 },
    );
  });
});
