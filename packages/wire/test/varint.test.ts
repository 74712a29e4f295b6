import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  MAX_ZIGZAG_INT_BYTES,
  MAX_ZIGZAG_LONG_BYTES,
  NEED_MORE,
  readZigZagInt,
  readZigZagLong,
  tryReadZigZagInt,
  tryReadZigZagLong,
  type VarintResult,
  writeZigZagInt,
  writeZigZagLong,
  zigZagIntSize,
  zigZagLongSize,
} from "../src/index.js";
import {
  expectWireError,
  hex,
  INT32_MAX,
  INT32_MIN,
  INT64_MAX,
  INT64_MIN,
  int32,
  int64,
  onlyWireErrors,
  refZigZag,
  toHex,
} from "./helpers.js";

const encInt = (v: number): Uint8Array => {
  const buf = new Uint8Array(MAX_ZIGZAG_INT_BYTES + 2);
  return buf.subarray(0, writeZigZagInt(buf, 0, v));
};
const encLong = (v: bigint): Uint8Array => {
  const buf = new Uint8Array(MAX_ZIGZAG_LONG_BYTES + 2);
  return buf.subarray(0, writeZigZagLong(buf, 0, v));
};

describe("ZigZagInt", () => {
  it("round-trips every int32 and matches a reference ZigZag+LEB128 encoding byte for byte", () => {
    fc.assert(
      fc.property(int32, (v) => {
        const bytes = encInt(v);
        expect(Array.from(bytes)).toEqual(refZigZag(BigInt(v), 32));
        expect(zigZagIntSize(v)).toBe(bytes.length);
        expect(readZigZagInt(bytes, 0)).toEqual([v, bytes.length]);
        const out: VarintResult = { value: 0, next: 0 };
        expect(tryReadZigZagInt(bytes, 0, bytes.length, out)).toBe(bytes.length);
        expect(out).toEqual({ value: v, next: bytes.length });
      }),
      { numRuns: 2000 },
    );
  });

  it("round-trips at an offset inside a larger buffer and ignores bytes past the value", () => {
    fc.assert(
      fc.property(int32, fc.nat(20), fc.uint8Array({ maxLength: 8 }), (v, pad, tail) => {
        const buf = new Uint8Array(pad + MAX_ZIGZAG_INT_BYTES + tail.length).fill(0xff);
        const end = writeZigZagInt(buf, pad, v);
        buf.set(tail, end);
        expect(end - pad).toBe(zigZagIntSize(v));
        expect(readZigZagInt(buf, pad)).toEqual([v, end]);
      }),
      { numRuns: 300 },
    );
  });

  it("sizes are exact at every 7-bit boundary", () => {
    for (let k = 0; k <= 31; k++) {
      for (const v of [2 ** k - 1, 2 ** k, -(2 ** k), -(2 ** k) - 1, 2 ** k + 1]) {
        if (v < INT32_MIN || v > INT32_MAX) continue;
        const bytes = encInt(v);
        expect(zigZagIntSize(v)).toBe(bytes.length);
        expect(Array.from(bytes)).toEqual(refZigZag(BigInt(v), 32));
        expect(readZigZagInt(bytes, 0)[0]).toBe(v);
      }
    }
  });

  it("known answers from the spec (§0.1): 10 → 14, 64 → 80 01, −1 → 01, 0 → 00", () => {
    expect(toHex(encInt(10))).toBe("14");
    expect(toHex(encInt(64))).toBe("8001");
    expect(toHex(encInt(-1))).toBe("01");
    expect(toHex(encInt(0))).toBe("00");
    expect(toHex(encInt(1))).toBe("02");
    expect(toHex(encInt(-64))).toBe("7f");
    expect(toHex(encInt(63))).toBe("7e");
    expect(toHex(encInt(26))).toBe("34");
  });

  it("known answers for the int32 extremes", () => {
    // z(min) = 0xffffffff → ff ff ff ff 0f; z(max) = 0xfffffffe → fe ff ff ff 0f
    expect(toHex(encInt(INT32_MIN))).toBe("ffffffff0f");
    expect(toHex(encInt(INT32_MAX))).toBe("feffffff0f");
    expect(readZigZagInt(hex("ffffffff0f"), 0)).toEqual([INT32_MIN, 5]);
    expect(readZigZagInt(hex("feffffff0f"), 0)).toEqual([INT32_MAX, 5]);
    expect(zigZagIntSize(INT32_MIN)).toBe(5);
    expect(zigZagIntSize(INT32_MAX)).toBe(5);
  });

  it("rejects a 6-byte varint with VARINT_TOO_LONG", () => {
    expectWireError(() => readZigZagInt(hex("808080808000"), 0), "VARINT_TOO_LONG");
    expectWireError(() => readZigZagInt(hex("ffffffff8f01"), 0), "VARINT_TOO_LONG");
    // Decided at the 5th byte: no need to see a 6th.
    expectWireError(() => readZigZagInt(hex("8080808080"), 0), "VARINT_TOO_LONG");
    expectWireError(
      () => tryReadZigZagInt(hex("8080808080"), 0, 5, { value: 0, next: 0 }),
      "VARINT_TOO_LONG",
    );
  });

  it("rejects a 5th byte above 0x0f with OUT_OF_RANGE", () => {
    for (let b = 0x10; b < 0x80; b++) {
      const bytes = hex(`80808080${b.toString(16).padStart(2, "0")}`);
      expectWireError(() => readZigZagInt(bytes, 0), "OUT_OF_RANGE");
    }
    for (let b = 0; b <= 0x0f; b++) {
      const bytes = hex(`ffffffff0${b.toString(16)}`);
      expect(() => readZigZagInt(bytes, 0)).not.toThrow();
    }
  });

  it("truncated input: readZigZagInt throws TRUNCATED, tryReadZigZagInt returns NEED_MORE (every prefix)", () => {
    fc.assert(
      fc.property(int32, (v) => {
        const bytes = encInt(v);
        for (let k = 0; k < bytes.length; k++) {
          const prefix = bytes.slice(0, k);
          expectWireError(() => readZigZagInt(prefix, 0), "TRUNCATED");
          expect(tryReadZigZagInt(prefix, 0, k, { value: 0, next: 0 })).toBe(NEED_MORE);
          // also when the buffer is longer but `end` says the bytes are not there yet
          expect(tryReadZigZagInt(bytes, 0, k, { value: 0, next: 0 })).toBe(NEED_MORE);
          expectWireError(() => readZigZagInt(bytes, 0, k), "TRUNCATED");
        }
      }),
      { numRuns: 300 },
    );
    expectWireError(() => readZigZagInt(new Uint8Array(0), 0), "TRUNCATED");
    expectWireError(() => readZigZagInt(hex("ff"), 0), "TRUNCATED");
  });

  it("refuses to write values that are not int32 with OUT_OF_RANGE", () => {
    const buf = new Uint8Array(16);
    for (const v of [
      INT32_MAX + 1,
      INT32_MIN - 1,
      2 ** 53,
      -(2 ** 40),
      1.5,
      -0.5,
      Number.NaN,
      Infinity,
      -Infinity,
    ]) {
      expectWireError(() => writeZigZagInt(buf, 0, v), "OUT_OF_RANGE");
    }
  });

  it("arbitrary bytes decode to an int32 or fail with a WireError", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 8 }), (bytes) => {
        onlyWireErrors(() => {
          const [v, next] = readZigZagInt(bytes, 0);
          expect(Number.isInteger(v) && v >= INT32_MIN && v <= INT32_MAX).toBe(true);
          expect(next).toBeLessThanOrEqual(MAX_ZIGZAG_INT_BYTES);
        });
      }),
      { numRuns: 1000 },
    );
  });
});

describe("ZigZagLong", () => {
  it("round-trips every int64 (bigint) and matches a reference ZigZag+LEB128 encoding byte for byte", () => {
    fc.assert(
      fc.property(int64, (v) => {
        const bytes = encLong(v);
        expect(Array.from(bytes)).toEqual(refZigZag(v, 64));
        expect(zigZagLongSize(v)).toBe(bytes.length);
        expect(readZigZagLong(bytes, 0)).toEqual([v, bytes.length]);
        expect(tryReadZigZagLong(bytes, 0, bytes.length)).toEqual([v, bytes.length]);
      }),
      { numRuns: 2000 },
    );
  });

  it("sizes and encodings are exact at every 7-bit boundary", () => {
    for (let k = 0n; k <= 63n; k++) {
      for (const v of [2n ** k - 1n, 2n ** k, -(2n ** k), -(2n ** k) - 1n, 2n ** k + 1n]) {
        if (v < INT64_MIN || v > INT64_MAX) continue;
        const bytes = encLong(v);
        expect(zigZagLongSize(v)).toBe(bytes.length);
        expect(Array.from(bytes)).toEqual(refZigZag(v, 64));
        expect(readZigZagLong(bytes, 0)[0]).toBe(v);
      }
    }
  });

  it("agrees with ZigZagInt on the int32 range", () => {
    fc.assert(
      fc.property(int32, (v) => {
        expect(toHex(encLong(BigInt(v)))).toBe(toHex(encInt(v)));
      }),
      { numRuns: 500 },
    );
  });

  it("known answers: 10 → 14, 64 → 80 01, −1 → 01, 0 → 00, int64 min/max", () => {
    expect(toHex(encLong(10n))).toBe("14");
    expect(toHex(encLong(64n))).toBe("8001");
    expect(toHex(encLong(-1n))).toBe("01");
    expect(toHex(encLong(0n))).toBe("00");
    // z(min) = 2^64 − 1 → nine ff then 01; z(max) = 2^64 − 2 → fe, eight ff, then 01
    expect(toHex(encLong(INT64_MIN))).toBe("ffffffffffffffffff01");
    expect(toHex(encLong(INT64_MAX))).toBe("feffffffffffffffff01");
    expect(readZigZagLong(hex("ffffffffffffffffff01"), 0)).toEqual([INT64_MIN, 10]);
    expect(readZigZagLong(hex("feffffffffffffffff01"), 0)).toEqual([INT64_MAX, 10]);
    // 2^31 needs more than the int32 path: z = 2^32 → 80 80 80 80 10
    expect(toHex(encLong(2n ** 31n))).toBe("8080808010");
    expect(zigZagLongSize(INT64_MIN)).toBe(10);
    expect(zigZagLongSize(INT64_MAX)).toBe(10);
  });

  it("rejects an 11-byte varint with VARINT_TOO_LONG", () => {
    expectWireError(() => readZigZagLong(hex(`${"80".repeat(10)}00`), 0), "VARINT_TOO_LONG");
    expectWireError(() => readZigZagLong(hex(`${"ff".repeat(10)}01`), 0), "VARINT_TOO_LONG");
    expectWireError(() => tryReadZigZagLong(hex("80".repeat(10)), 0, 10), "VARINT_TOO_LONG");
  });

  it("rejects a 10th byte above 0x01 with OUT_OF_RANGE", () => {
    for (let b = 2; b < 0x80; b++) {
      const bytes = hex(`${"80".repeat(9)}${b.toString(16).padStart(2, "0")}`);
      expectWireError(() => readZigZagLong(bytes, 0), "OUT_OF_RANGE");
    }
    // z = 2^63 (the highest bit) is still in range: value 2^62
    expect(readZigZagLong(hex(`${"80".repeat(9)}01`), 0)).toEqual([2n ** 62n, 10]);
  });

  it("truncated input: readZigZagLong throws TRUNCATED, tryReadZigZagLong returns undefined (every prefix)", () => {
    fc.assert(
      fc.property(int64, (v) => {
        const bytes = encLong(v);
        for (let k = 0; k < bytes.length; k++) {
          expect(tryReadZigZagLong(bytes.slice(0, k), 0, k)).toBeUndefined();
          expect(tryReadZigZagLong(bytes, 0, k)).toBeUndefined();
          expectWireError(() => readZigZagLong(bytes.slice(0, k), 0), "TRUNCATED");
          expectWireError(() => readZigZagLong(bytes, 0, k), "TRUNCATED");
        }
      }),
      { numRuns: 300 },
    );
  });

  it("refuses to write or size values outside int64 with OUT_OF_RANGE", () => {
    const buf = new Uint8Array(16);
    for (const v of [INT64_MAX + 1n, INT64_MIN - 1n, 2n ** 64n, -(2n ** 100n)]) {
      expectWireError(() => writeZigZagLong(buf, 0, v), "OUT_OF_RANGE");
      expectWireError(() => zigZagLongSize(v), "OUT_OF_RANGE");
    }
  });

  it("arbitrary bytes decode to an int64 or fail with a WireError", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 12 }), (bytes) => {
        onlyWireErrors(() => {
          const [v, next] = readZigZagLong(bytes, 0);
          expect(v >= INT64_MIN && v <= INT64_MAX).toBe(true);
          expect(next).toBeLessThanOrEqual(MAX_ZIGZAG_LONG_BYTES);
        });
      }),
      { numRuns: 1000 },
    );
  });
});
