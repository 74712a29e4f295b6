import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  readIntFixed,
  readLongFixed,
  readLongFixedNumber,
  readULongFixed,
  writeIntFixed,
  writeLongFixed,
  writeLongFixedNumber,
} from "../src/index.js";
import { expectWireError, INT64_MAX, INT64_MIN, int32, int64, refLE, toHex } from "./helpers.js";

const MAX_SAFE = Number.MAX_SAFE_INTEGER;

describe("IntFixed", () => {
  it("round-trips every int32, little-endian", () => {
    fc.assert(
      fc.property(int32, fc.nat(8), (v, at) => {
        const buf = new Uint8Array(at + 4);
        expect(writeIntFixed(buf, at, v)).toBe(at + 4);
        expect(Array.from(buf.subarray(at))).toEqual(refLE(BigInt(v), 4));
        expect(readIntFixed(buf, at)).toBe(v);
      }),
      { numRuns: 1000 },
    );
  });

  it("accepts uint32 on write (read back as the same bits, signed)", () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 0xffffffff }), (v) => {
        const buf = new Uint8Array(4);
        writeIntFixed(buf, 0, v);
        expect(readIntFixed(buf, 0)).toBe(v | 0);
      }),
    );
  });

  it("known answers", () => {
    const buf = new Uint8Array(4);
    writeIntFixed(buf, 0, 26);
    expect(toHex(buf)).toBe("1a000000");
    writeIntFixed(buf, 0, 0x12345678);
    expect(toHex(buf)).toBe("78563412");
    writeIntFixed(buf, 0, -1);
    expect(toHex(buf)).toBe("ffffffff");
    writeIntFixed(buf, 0, -0x80000000);
    expect(toHex(buf)).toBe("00000080");
  });

  it("rejects out-of-range writes and truncated reads", () => {
    const buf = new Uint8Array(8);
    for (const v of [2 ** 32, -(2 ** 31) - 1, 0.5, Number.NaN]) {
      expectWireError(() => writeIntFixed(buf, 0, v), "OUT_OF_RANGE");
    }
    expectWireError(() => readIntFixed(new Uint8Array(3), 0), "TRUNCATED");
    expectWireError(() => readIntFixed(buf, 5), "TRUNCATED");
  });
});

describe("LongFixed", () => {
  it("round-trips every int64 as bigint (signed and unsigned views)", () => {
    fc.assert(
      fc.property(int64, (v) => {
        const buf = new Uint8Array(8);
        expect(writeLongFixed(buf, 0, v)).toBe(8);
        expect(Array.from(buf)).toEqual(refLE(v, 8));
        expect(readLongFixed(buf, 0)).toBe(v);
        expect(readULongFixed(buf, 0)).toBe(BigInt.asUintN(64, v));
      }),
      { numRuns: 1000 },
    );
  });

  it("round-trips every uint64 (check bytes are unsigned)", () => {
    fc.assert(
      fc.property(fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }), (v) => {
        const buf = new Uint8Array(8);
        writeLongFixed(buf, 0, v);
        expect(readULongFixed(buf, 0)).toBe(v);
        expect(readLongFixed(buf, 0)).toBe(BigInt.asIntN(64, v));
      }),
      { numRuns: 500 },
    );
  });

  it("number path round-trips every safe integer and agrees with the bigint path", () => {
    fc.assert(
      fc.property(fc.integer({ min: -MAX_SAFE, max: MAX_SAFE }), fc.nat(8), (v, at) => {
        const buf = new Uint8Array(at + 8);
        expect(writeLongFixedNumber(buf, at, v)).toBe(at + 8);
        expect(Array.from(buf.subarray(at))).toEqual(refLE(BigInt(v), 8));
        expect(readLongFixedNumber(buf, at)).toBe(v);
        expect(readLongFixed(buf, at)).toBe(BigInt(v));
      }),
      { numRuns: 1000 },
    );
    const buf = new Uint8Array(8);
    for (const v of [0, -1, -2, 1, 2 ** 32, -(2 ** 32), 2 ** 32 - 1, -(2 ** 32) - 1, MAX_SAFE, -MAX_SAFE]) {
      writeLongFixedNumber(buf, 0, v);
      expect(readLongFixedNumber(buf, 0)).toBe(v);
      expect(readLongFixed(buf, 0)).toBe(BigInt(v));
    }
  });

  it("readLongFixedNumber rejects every value beyond the safe-integer range with OUT_OF_RANGE", () => {
    const beyond = fc.oneof(
      fc.bigInt({ min: BigInt(MAX_SAFE) + 1n, max: INT64_MAX }),
      fc.bigInt({ min: INT64_MIN, max: -BigInt(MAX_SAFE) - 1n }),
    );
    fc.assert(
      fc.property(beyond, (v) => {
        const buf = new Uint8Array(8);
        writeLongFixed(buf, 0, v);
        expectWireError(() => readLongFixedNumber(buf, 0), "OUT_OF_RANGE");
      }),
      { numRuns: 500 },
    );
    const buf = new Uint8Array(8);
    for (const v of [2n ** 53n, 2n ** 53n + 1n, -(2n ** 53n), -(2n ** 53n) - 1n, INT64_MAX, INT64_MIN]) {
      writeLongFixed(buf, 0, v);
      expectWireError(() => readLongFixedNumber(buf, 0), "OUT_OF_RANGE");
    }
  });

  it("rejects out-of-range writes and truncated reads", () => {
    const buf = new Uint8Array(8);
    expectWireError(() => writeLongFixed(buf, 0, 2n ** 64n), "OUT_OF_RANGE");
    expectWireError(() => writeLongFixed(buf, 0, INT64_MIN - 1n), "OUT_OF_RANGE");
    for (const v of [2 ** 53, -(2 ** 53), 0.5, Number.NaN, Infinity]) {
      expectWireError(() => writeLongFixedNumber(buf, 0, v), "OUT_OF_RANGE");
    }
    expectWireError(() => readLongFixed(new Uint8Array(7), 0), "TRUNCATED");
    expectWireError(() => readULongFixed(buf, 1), "TRUNCATED");
    expectWireError(() => readLongFixedNumber(buf, 1), "TRUNCATED");
  });
});
