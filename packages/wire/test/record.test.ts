import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  CHECKPOINT_SEQUENCE,
  checkBytes,
  decodeRecord,
  encodeMessages,
  encodeRecord,
  hasCheckBytes,
  MAX_RECORD_LENGTH,
  RECORD_HEADER_SIZE,
  readRecordHeader,
  verifyCheckBytes,
  writeRecordHeader,
} from "../src/index.js";
import {
  expectWireError,
  int32,
  message,
  norm,
  onlyWireErrors,
  recordMessages,
  refLE,
  refXxh64,
} from "./helpers.js";

const sequence = fc.oneof(
  fc.constantFrom(-1, -2, 0, 1),
  fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }),
  fc.integer({ min: -Number.MAX_SAFE_INTEGER, max: -1 }),
);
const header = fc.record({
  committerId: int32,
  length: fc.integer({ min: RECORD_HEADER_SIZE, max: MAX_RECORD_LENGTH }),
  checkBytes: fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }),
  sequence,
});

describe("record header", () => {
  it("round-trips every field and lays it out as [IntFixed id][IntFixed len][LongFixed check][LongFixed seq]", () => {
    fc.assert(
      fc.property(header, fc.nat(8), (h, at) => {
        const buf = new Uint8Array(at + RECORD_HEADER_SIZE);
        expect(writeRecordHeader(buf, at, h)).toBe(at + RECORD_HEADER_SIZE);
        const expected = [
          ...refLE(BigInt(h.committerId), 4),
          ...refLE(BigInt(h.length), 4),
          ...refLE(h.checkBytes, 8),
          ...refLE(BigInt(h.sequence), 8),
        ];
        expect(Array.from(buf.subarray(at))).toEqual(expected);
        expect(readRecordHeader(buf, at, MAX_RECORD_LENGTH)).toEqual(h);
      }),
      { numRuns: 1000 },
    );
  });

  it("writeRecordHeader refuses a length below 24 or above 2^31 − 1", () => {
    const buf = new Uint8Array(24);
    for (const length of [0, 1, 23, -1, MAX_RECORD_LENGTH + 1]) {
      expectWireError(
        () => writeRecordHeader(buf, 0, { committerId: 1, length, checkBytes: 0n, sequence: 0 }),
        "BAD_RECORD_LENGTH",
      );
    }
  });
});

describe("record round trips", () => {
  it("encodeRecord → decodeRecord (verified) gives header, payload and messages back", () => {
    fc.assert(
      fc.property(int32, sequence, recordMessages, (committerId, seq, ms) => {
        const rec = encodeRecord({ committerId, sequence: seq, messages: ms });
        const payload = encodeMessages(ms);
        expect(rec.length).toBe(RECORD_HEADER_SIZE + payload.length);
        expect(Buffer.compare(rec.subarray(RECORD_HEADER_SIZE), payload)).toBe(0);
        const d = decodeRecord(rec);
        const expectedCheck = seq === CHECKPOINT_SEQUENCE ? 0n : checkBytes(payload);
        expect(d.header).toEqual({
          committerId,
          length: rec.length,
          checkBytes: expectedCheck,
          sequence: seq,
        });
        expect(norm(d.messages)).toEqual(norm(ms));
        expect(Buffer.compare(d.payload, payload)).toBe(0);
        expect(d.next).toBe(rec.length);
        // the same record built from a ready payload is byte-identical
        expect(Buffer.compare(encodeRecord({ committerId, sequence: seq, payload }), rec)).toBe(0);
      }),
      { numRuns: 500 },
    );
  });

  it("check bytes are xxHash64 of the payload (independent reference), unsigned", () => {
    fc.assert(
      fc.property(
        int32,
        fc.integer({ min: -1, max: 1_000_000 }),
        fc.uint8Array({ maxLength: 300 }),
        (id, seq, payload) => {
          const rec = encodeRecord({ committerId: id, sequence: seq, payload });
          expect(readRecordHeader(rec, 0).checkBytes).toBe(refXxh64(payload));
        },
      ),
      { numRuns: 200 },
    );
  });

  it("records packed back to back decode one after another", () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(int32, sequence, recordMessages), { maxLength: 5 }), (specs) => {
        const recs = specs.map(([committerId, seq, ms]) =>
          encodeRecord({ committerId, sequence: seq, messages: ms }),
        );
        const stream = Buffer.concat(recs);
        let p = 0;
        for (const [i, [committerId, seq, ms]] of specs.entries()) {
          const d = decodeRecord(stream, p);
          expect(d.header.committerId).toBe(committerId);
          expect(d.header.sequence).toBe(seq);
          expect(norm(d.messages)).toEqual(norm(ms));
          expect(d.next).toBe(p + recs[i]!.length);
          p = d.next;
        }
        expect(p).toBe(stream.length);
      }),
      { numRuns: 200 },
    );
  });

  it("messages in records can be decoded with the outgoing layout when asked", () => {
    const rec = encodeRecord({
      committerId: 7,
      sequence: 3,
      messages: [
        { type: 0, destination: "a", reserved: 0, methodId: 1, rpcType: 1, args: new Uint8Array([9]) },
      ],
    });
    expect(norm(decodeRecord(rec, 0, { layout: "outgoing" }).messages)).toEqual([
      { type: 0, destination: "a", reserved: 0, methodId: 1, rpcType: 1, args: [9] },
    ]);
  });
});

describe("check-byte verification", () => {
  it("flipping any bit of the payload is detected (BAD_CHECK_BYTES) for every record outside sequence −2", () => {
    const nonCheckpointSeq = sequence.filter((s) => s !== CHECKPOINT_SEQUENCE);
    fc.assert(
      fc.property(
        int32,
        nonCheckpointSeq,
        fc.array(message("incoming"), { minLength: 1, maxLength: 4 }),
        fc.nat(),
        (id, seq, ms, bitRaw) => {
          const rec = new Uint8Array(encodeRecord({ committerId: id, sequence: seq, messages: ms }));
          const bits = (rec.length - RECORD_HEADER_SIZE) * 8;
          const bit = bitRaw % bits;
          rec[RECORD_HEADER_SIZE + (bit >> 3)]! ^= 1 << (bit & 7);
          expectWireError(() => decodeRecord(rec), "BAD_CHECK_BYTES");
          // without verification the codec still never throws anything but a WireError
          onlyWireErrors(() => decodeRecord(rec, 0, { verify: false }));
        },
      ),
      { numRuns: 500 },
    );
  });

  it("every single-bit flip of a small record's payload is detected (exhaustive)", () => {
    const rec = encodeRecord({
      committerId: 0x12345678,
      sequence: 5,
      messages: [{ type: 0, reserved: 0, methodId: 3, rpcType: 1, args: new Uint8Array([1, 2, 3, 4]) }],
    });
    for (let bit = 0; bit < (rec.length - RECORD_HEADER_SIZE) * 8; bit++) {
      const copy = new Uint8Array(rec);
      copy[RECORD_HEADER_SIZE + (bit >> 3)]! ^= 1 << (bit & 7);
      expectWireError(() => decodeRecord(copy), "BAD_CHECK_BYTES");
    }
  });

  it("flipping any bit of the check bytes is detected", () => {
    const rec = encodeRecord({ committerId: 1, sequence: 0, messages: [{ type: 2 }] });
    for (let bit = 0; bit < 64; bit++) {
      const copy = new Uint8Array(rec);
      copy[8 + (bit >> 3)]! ^= 1 << (bit & 7);
      expectWireError(() => decodeRecord(copy), "BAD_CHECK_BYTES");
      expect(decodeRecord(copy, 0, { verify: false }).messages).toEqual([{ type: 2 }]);
    }
  });

  it("hasCheckBytes / verifyCheckBytes follow the AMBROSIA convention (only −2 with 0 is unverified)", () => {
    expect(hasCheckBytes({ committerId: 0, length: 24, checkBytes: 0n, sequence: -2 })).toBe(false);
    expect(hasCheckBytes({ committerId: 0, length: 24, checkBytes: 1n, sequence: -2 })).toBe(true);
    expect(hasCheckBytes({ committerId: 0, length: 24, checkBytes: 0n, sequence: -1 })).toBe(true);
    expect(hasCheckBytes({ committerId: 0, length: 24, checkBytes: 0n, sequence: 0 })).toBe(true);
    const payload = new Uint8Array([1, 2, 3]);
    verifyCheckBytes({ committerId: 0, length: 27, checkBytes: checkBytes(payload), sequence: 0 }, payload);
    expectWireError(
      () => verifyCheckBytes({ committerId: 0, length: 27, checkBytes: 0n, sequence: 0 }, payload),
      "BAD_CHECK_BYTES",
    );
  });
});
