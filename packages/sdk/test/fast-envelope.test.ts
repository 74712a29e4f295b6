// The SDK codec's fast envelope layout: whatever takes it decodes to exactly what the general serializer
// gives back; whatever it cannot hold takes the general path; malformed bytes fail with a typed error.
import { msgpackSerializer } from "@immortal/checkpoint";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { defaultCodec } from "../src/codec.js";
import { FastEnvelopeError, isFast } from "../src/fast-envelope.js";

const codec = defaultCodec();
const general = (v: unknown) => msgpackSerializer.decode(msgpackSerializer.encode(v));

/** Simple values: the ones the fast layout holds, and a few it must refuse (bigint, Date, Map, lone surrogate). */
const simple = fc.oneof(
  fc.constant(undefined),
  fc.constant(null),
  fc.boolean(),
  fc.integer(),
  fc.double(),
  fc.constantFrom(-0, 2 ** 31, -(2 ** 31), 2 ** 53, Number.NaN, Number.POSITIVE_INFINITY),
  fc.string({ unit: "grapheme" }),
  fc.string({ unit: "binary" }),
  fc.uint8Array({ maxLength: 70 }),
  fc.uint8Array({ maxLength: 70 }).map((u) => Buffer.from(u)),
  fc.bigInt(),
  fc.date({ noInvalidDate: true }),
  fc.constant(new Map([[1, 2]])),
  fc.constant("\ud800 lone"),
);
const key = fc.oneof(
  fc.constantFrom("t", "a", "c", "f", "m", "ok", "v", "e", "__proto__"),
  fc.string({ maxLength: 8 }),
);
const inner = fc.oneof(
  simple,
  fc.array(simple, { maxLength: 6 }),
  fc.dictionary(key, simple, { maxKeys: 4 }),
);
const deep = fc.oneof(inner, fc.array(inner, { maxLength: 3 }), fc.dictionary(key, inner, { maxKeys: 3 }));
const envelope = fc.dictionary(key, deep, { maxKeys: 8 });

function expectSame(got: unknown, want: unknown): void {
  expect(got).toStrictEqual(want);
  // toStrictEqual checks classes; also check Buffers own their whole ArrayBuffer in both.
  const walk = (a: unknown, b: unknown): void => {
    if (a instanceof Uint8Array && b instanceof Uint8Array) {
      expect([a.byteOffset, a.buffer.byteLength]).toEqual([b.byteOffset, b.buffer.byteLength]);
    } else if (typeof a === "object" && a !== null && typeof b === "object" && b !== null) {
      for (const k of Object.keys(a))
        walk((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k]);
    }
  };
  walk(got, want);
}

describe("SDK codec fast envelope", () => {
  it("takes the envelopes the SDK sends", () => {
    const payload = new Uint8Array(64).fill(7);
    for (const env of [
      { t: Date.now(), a: [3, payload, 1.5, false, true], m: "receive" },
      { t: 1, a: ["alice", 1], c: 42, f: "a", m: "add" },
      { t: 1, c: "outside-7", m: "add", ok: true, v: 17 },
      { t: 1, c: 3, m: "add", ok: false, e: { n: "Error", m: "no such account" } },
      { t: 1 },
    ]) {
      const bytes = codec.encode(env);
      expect(isFast(bytes), JSON.stringify(env)).toBe(true);
      expectSame(codec.decode(bytes), general(env));
    }
  });

  it("decodes to what the general serializer gives back, whichever path the value takes", () => {
    fc.assert(
      fc.property(envelope, (env) => {
        expectSame(codec.decode(codec.encode(env)), general(env));
      }),
      { numRuns: 2000 },
    );
  });

  it("sends what it cannot hold down the general path", () => {
    const shared = new Uint8Array(3);
    for (const env of [
      { t: 1, a: [10n] },
      { t: 1, a: [new Date(0)] },
      { t: 1, a: [new Map()] },
      { t: 1, a: ["\udc00"] },
      { t: 1, a: [[[1]]] },
      { t: 1, a: [shared, shared] },
      { t: 1, a: Array.from({ length: 100 }, (_, i) => i) },
      JSON.parse('{"__proto__": 1}') as unknown,
      Object.assign(Object.create(null) as object, { t: 1 }),
      [1, 2],
      "text",
    ]) {
      const bytes = codec.encode(env);
      expect(isFast(bytes)).toBe(false);
      expectSame(codec.decode(bytes), general(env));
    }
    const back = codec.decode(codec.encode({ t: 1, a: [shared, shared] })) as { a: Uint8Array[] };
    expect(back.a[0]).toBe(back.a[1]);
  });

  it("still decodes envelopes written by the general serializer (logs from before the fast path)", () => {
    const env = { t: 5, a: [1, new Uint8Array([1, 2])], m: "receive" };
    expectSame(codec.decode(msgpackSerializer.encode(env)), general(env));
  });

  it("decodes at any chunking of the log record it came in (the bytes are the whole argument)", () => {
    // Copies at every offset: the reader must not assume its input starts at byteOffset 0.
    const bytes = codec.encode({ t: 1, a: ["x", new Uint8Array([9, 8])], m: "m" });
    for (let off = 0; off < 9; off++) {
      const host = new Uint8Array(bytes.length + off);
      host.set(bytes, off);
      expectSame(codec.decode(host.subarray(off)), codec.decode(bytes));
    }
  });

  it("rejects truncated, extended and corrupted fast envelopes with FastEnvelopeError", () => {
    const bytes = codec.encode({ t: 1.5, a: [1, "two", new Uint8Array([3])], m: "m", e: { n: "E", m: "x" } });
    for (let n = 2; n < bytes.length; n++) {
      expect(() => codec.decode(bytes.subarray(0, n)), `cut at ${n}`).toThrow(FastEnvelopeError);
    }
    expect(() => codec.decode(Buffer.concat([bytes, Buffer.of(0)]))).toThrow(FastEnvelopeError);
    const bad = Buffer.from(bytes);
    bad[2] = 0x7f;
    expect(() => codec.decode(bad)).toThrow(/unknown value tag 0x7f/);
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 40 }), (tail) => {
        try {
          codec.decode(Buffer.concat([Buffer.of(0xc1, 0xe1), tail]));
        } catch (e) {
          expect(e).toBeInstanceOf(FastEnvelopeError);
        }
      }),
    );
  });
});
