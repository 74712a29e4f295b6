import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  checkBytes,
  checkBytesNative,
  checkBytesWasm,
  createCheckBytesHasher,
  SMALL_HASH_THRESHOLD,
} from "../src/index.js";
import { hex, refXxh64 } from "./helpers.js";

const all = (b: Uint8Array): bigint[] => [checkBytes(b), checkBytesNative(b), checkBytesWasm(b)];

describe("check bytes (xxHash64, seed 0)", () => {
  it("match the published XXH64 vectors (and the BigInt reference implementation)", () => {
    const vectors: [string, bigint][] = [
      ["", 0xef46db3751d8e999n],
      ["a", 0xd24ec4f1a98c6e5bn],
      ["abc", 0x44bc2cf5ad770999n],
    ];
    for (const [s, expected] of vectors) {
      const b = new Uint8Array(Buffer.from(s, "latin1"));
      expect(refXxh64(b)).toBe(expected);
      expect(all(b)).toEqual([expected, expected, expected]);
    }
  });

  it("of a control record payload 02 0b is 0xda2d84cbc279f1c7 (all implementations agree)", () => {
    const b = hex("020b");
    expect(refXxh64(b)).toBe(0xda2d84cbc279f1c7n);
    expect(all(b)).toEqual([0xda2d84cbc279f1c7n, 0xda2d84cbc279f1c7n, 0xda2d84cbc279f1c7n]);
  });

  it("hybrid, native and WASM agree with the reference on short inputs (every tail length)", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 100 }), (b) => {
        const r = refXxh64(b);
        expect(all(b)).toEqual([r, r, r]);
      }),
      { numRuns: 300 },
    );
  });

  it("hybrid, native and WASM agree around SMALL_HASH_THRESHOLD, also on views with an offset", () => {
    const around = fc.integer({ min: SMALL_HASH_THRESHOLD - 40, max: SMALL_HASH_THRESHOLD + 40 });
    fc.assert(
      fc.property(
        around.chain((n) => fc.uint8Array({ minLength: n, maxLength: n })),
        fc.nat(7),
        (data, shift) => {
          const backing = new Uint8Array(data.length + 16);
          backing.set(data, shift);
          const view = backing.subarray(shift, shift + data.length);
          const r = refXxh64(data);
          expect(all(data)).toEqual([r, r, r]);
          expect(all(view)).toEqual([r, r, r]);
          expect(all(Buffer.from(data))).toEqual([r, r, r]);
        },
      ),
      { numRuns: 60 },
    );
  });

  it("hybrid, native and WASM agree on large inputs", () => {
    fc.assert(
      fc.property(fc.integer({ min: 4096, max: 300_000 }), fc.nat(255), fc.nat(7), (n, fill, shift) => {
        const backing = new Uint8Array(n + 8);
        for (let i = 0; i < backing.length; i++) backing[i] = (i * 31 + fill) & 0xff;
        const view = backing.subarray(shift, shift + n);
        const native = checkBytesNative(view);
        expect(checkBytesWasm(view)).toBe(native);
        expect(checkBytes(view)).toBe(native);
      }),
      { numRuns: 30 },
    );
    // one large input against the independent reference too
    const big = new Uint8Array(20_000).map((_, i) => (i * 7 + 3) & 0xff);
    expect(checkBytes(big)).toBe(refXxh64(big));
  });

  it("the incremental hasher over arbitrary splits equals the one-shot hash", () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ maxLength: 3000 }),
        fc.array(fc.nat(), { maxLength: 8 }),
        (data, cutsRaw) => {
          const cuts = [...new Set(cutsRaw.map((c) => c % (data.length + 1)))].sort((a, b) => a - b);
          const h = createCheckBytesHasher();
          let prev = 0;
          for (const c of [...cuts, data.length]) {
            expect(h.update(data.subarray(prev, c))).toBe(h);
            prev = c;
          }
          expect(h.digest()).toBe(checkBytes(data));
        },
      ),
      { numRuns: 200 },
    );
    expect(createCheckBytesHasher().digest()).toBe(0xef46db3751d8e999n);
  });
});
