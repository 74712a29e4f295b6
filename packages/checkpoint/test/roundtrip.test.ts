import { describe, expect, it } from "vitest";
import { STREAM_MAGIC, type StateSerializer } from "../src/index.js";
import { Account, concat, difference, Node2, Point, Quirky, serializers } from "./helpers.js";

const formats = serializers();

function withProto(key: string, value: unknown): Record<string, unknown> {
  const o: Record<string, unknown> = { before: 1 };
  Object.defineProperty(o, key, { value, enumerable: true, writable: true, configurable: true });
  o.after = 2;
  return o;
}

function cases(): Record<string, unknown> {
  const shared = { s: 1 };
  const selfRef: Record<string, unknown> = { name: "self" };
  selfRef.me = selfRef;
  const mapSelf = new Map<unknown, unknown>();
  mapSelf.set("me", mapSelf);
  mapSelf.set(mapSelf, "as key");
  const setSelf = new Set<unknown>();
  setSelf.add(setSelf);
  const a = new Node2("a");
  const b = new Node2("b");
  a.next = b;
  b.next = a;
  const nullProto = Object.create(null) as Record<string, unknown>;
  nullProto.x = 1;
  // An ordinary key on a null-prototype object (defined, so no linter mistakes it for the accessor).
  Object.defineProperty(nullProto, "__proto__", {
    value: "own",
    enumerable: true,
    writable: true,
    configurable: true,
  });
  const f64 = new Float64Array([1.5, -0, Number.NaN, Number.POSITIVE_INFINITY]);
  new DataView(f64.buffer).setUint32(16, 0x7ff80001, true); // a NaN with a payload: bytes must survive
  const big = new ArrayBuffer(32);
  new Uint8Array(big).set([1, 2, 3, 4, 5, 6, 7, 8], 8);
  return {
    zero: 0,
    negZero: -0,
    nan: Number.NaN,
    inf: Number.POSITIVE_INFINITY,
    negInf: Number.NEGATIVE_INFINITY,
    float: 1.5,
    bigFloat: 2 ** 53 + 2,
    tiny: 5e-324,
    int32: -(2 ** 31),
    emptyString: "",
    unicode: "héllo 🌍 \u0000 \u2028",
    loneSurrogates: "a\ud800b\udc00c\ud83d",
    bools: [true, false],
    nil: null,
    undef: undefined,
    bigints: [0n, -1n, 2n ** 63n - 1n, -(2n ** 63n), 2n ** 64n - 1n, 2n ** 64n, -(2n ** 200n)],
    arrayWithUndefined: [1, undefined, 3],
    nested: { a: [{ b: { c: [[], {}] } }] },
    dollarKeys: { $t: "not a tag", $$t: 2, $: 3, $$: 4, a$: 5, v: { $t: "Map", v: [] } },
    weirdKeys: { "": 1, constructor: 2, hasOwnProperty: 3, "0": 4, "10": 5, "a.b": 6, "\ud800": 7 },
    protoKey: withProto("__proto__", { polluted: true }),
    // msgpackr tells plain objects, arrays and Maps by `value.constructor`: an own "constructor" hides them.
    constructorKey: { constructor: "", nested: { constructor: 0n } },
    arrayWithConstructor: Object.assign([1, 2], { constructor: 5 }),
    mapWithConstructor: Object.assign(new Map([[1, 2]]), { constructor: 5 }),
    nullProtoConstructor: Object.assign(Object.create(null) as object, { constructor: 1 }),
    nullProto,
    map: new Map<unknown, unknown>([
      [1, "one"],
      ["1", "string one"],
      [Number.NaN, "nan"],
      [{ k: 1 }, new Map([[2n, new Set([1])]])],
      [undefined, null],
    ]),
    set: new Set<unknown>([1, "1", Number.NaN, undefined, { o: 1 }, [1]]),
    dates: [
      new Date(0),
      new Date(1_700_000_000_123),
      new Date(Number.NaN),
      new Date(8.64e15),
      new Date(-8.64e15),
    ],
    typed: [
      new Uint8Array([0, 255]),
      new Int8Array([-128, 127]),
      new Uint8ClampedArray([0, 255]),
      new Int16Array([-32768, 32767]),
      new Uint16Array([65535]),
      new Int32Array([-(2 ** 31)]),
      new Uint32Array([2 ** 32 - 1]),
      new Float32Array([Math.PI, -0]),
      f64,
      new BigInt64Array([-(2n ** 63n)]),
      new BigUint64Array([2n ** 64n - 1n]),
      new Uint8Array(0),
    ],
    arrayBuffer: big,
    dataView: new DataView(big, 8, 8),
    view: new Uint16Array(big, 8, 2), // decoded as its own 4 bytes, offset 0
    buffer: Buffer.from("buffer bytes"),
    point: new Point(3, 4),
    quirky: [new Quirky(), Object.assign(new Quirky(), { b: [2] })],
    account: new Account("ann", 10n ** 30n),
    sharedTwice: [shared, shared, { again: shared }],
    selfRef,
    mapSelf,
    setSelf,
    classCycle: a,
  };
}

type Layout = "whole" | "streamed";
function roundTrip(s: StateSerializer, layout: Layout, value: unknown, chunkSize = 64): unknown {
  if (layout === "whole") return s.decode(s.encode(value));
  return s.decode(concat(s.encodeStream(value, { chunkSize })));
}

describe.each(["json", "msgpack"] as const)("%s", (name) => {
  const s = formats[name];
  describe.each(["whole", "streamed"] as const)("%s layout", (layout) => {
    for (const [label, value] of Object.entries(cases())) {
      it(`round-trips ${label}`, () => {
        const out = roundTrip(s, layout, value);
        expect(difference(value, out)).toBeUndefined();
      });
    }

    it("round-trips all cases in one state (sharing across the whole state)", () => {
      const state = cases();
      const out = roundTrip(s, layout, state);
      expect(difference(state, out)).toBeUndefined();
    });

    it("turns array holes into undefined", () => {
      // biome-ignore lint/suspicious/noSparseArray: the point of the test
      const out = roundTrip(s, layout, [1, , 3]) as unknown[];
      expect(out).toEqual([1, undefined, 3]);
      expect(1 in out).toBe(true);
    });

    it("restores registered classes without calling the constructor or setters", () => {
      const before = Account.constructed;
      const out = roundTrip(s, layout, { p: new Point(3, 4), acc: new Account("bob", 5n) }) as {
        p: Point;
        acc: Account;
      };
      expect(Account.constructed).toBe(before + 1); // only the one built above
      expect(out.p).toBeInstanceOf(Point);
      expect(out.p.norm()).toBe(5);
      expect(out.acc.label).toBe("bob:5");
    });

    it("keeps a class instance's own property that shadows a prototype accessor", () => {
      const acc = new Account("x", 1n);
      Object.defineProperty(acc, "label", {
        value: "own",
        enumerable: true,
        writable: true,
        configurable: true,
      });
      const out = roundTrip(s, layout, acc) as Account;
      expect(Object.getOwnPropertyDescriptor(out, "label")?.value).toBe("own");
    });

    it("does not pollute Object.prototype through a __proto__ key", () => {
      const out = roundTrip(s, layout, withProto("__proto__", { polluted: true })) as Record<string, unknown>;
      expect(Object.getPrototypeOf(out)).toBe(Object.prototype);
      expect(({} as Record<string, unknown>).polluted).toBeUndefined();
      expect(Object.keys(out)).toEqual(["before", "__proto__", "after"]);
    });

    it("keeps one object referenced from several top-level entries as one object", () => {
      const customer = new Point(1, 2);
      const orders = new Map<number, unknown>();
      for (let i = 0; i < 50; i++) orders.set(i, { id: i, customer, blob: new Uint8Array(200) });
      const state = { customers: [customer], orders };
      const out = roundTrip(s, layout, state, 256) as typeof state;
      expect(difference(state, out)).toBeUndefined();
      expect((out.orders.get(49) as { customer: unknown }).customer).toBe(out.customers[0]);
    });

    it("holds multi-MiB binary values and shared class instances among them", () => {
      const blob = new Float64Array(600_000).map((_, i) => i / 3);
      const p = new Point(1, 2);
      const state = { a: blob, b: [p, new Set([p]), p], c: new Uint8Array(3 << 20).fill(9), d: p };
      expect(difference(state, roundTrip(s, layout, state, 4096))).toBeUndefined();
    });

    it("handles a chain of objects, arrays, Maps and Sets 990 levels deep", () => {
      let v: unknown = 1;
      for (let i = 0; i < 990; i++) v = [{ v }, [v], new Map([[i, v]]), new Set([v])][i % 4];
      expect(difference(v, roundTrip(s, layout, v))).toBeUndefined();
    });

    it("handles 300 nested class instances", () => {
      let v: unknown = null;
      for (let i = 0; i < 300; i++) {
        const n = new Node2(i);
        n.next = v as Node2 | null;
        v = n;
      }
      expect(difference(v, roundTrip(s, layout, v))).toBeUndefined();
    });
  });

  it("starts the streamed layout with the stream magic and the whole layout without it", () => {
    expect([...s.encode({ a: 1 }).subarray(0, 1)]).not.toEqual([STREAM_MAGIC[0]]);
    expect([...concat(s.encodeStream({ a: 1 })).subarray(0, 4)]).toEqual([...STREAM_MAGIC]);
  });

  it("decodeStream reads the whole layout too", async () => {
    const value = cases();
    const bytes = s.encode(value);
    const out = await s.decodeStream([bytes.subarray(0, 3), bytes.subarray(3)]);
    expect(difference(value, out)).toBeUndefined();
  });

  it("streams large binary values as views, in bounded frames", () => {
    const blob = new Uint8Array(5 << 20).map((_, i) => i * 7);
    const chunks = [...s.encodeStream({ blob, small: [1, 2, 3] })];
    // The blob's bytes are yielded as views of its own memory, never copied into a frame.
    expect(chunks.some((c) => c.buffer === blob.buffer)).toBe(true);
    expect(Math.max(...chunks.map((c) => c.length))).toBeLessThanOrEqual(1 << 20);
    const out = s.decode(concat(chunks)) as { blob: Uint8Array };
    expect(Buffer.compare(out.blob, blob)).toBe(0);
  });
});

describe("tagged JSON text", () => {
  it("is readable JSON with the documented tags", () => {
    const shared = { n: 1 };
    const state = {
      plain: { a: 1, $t: "user data" },
      n: [Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, -0, 1.5],
      u: undefined,
      big: 12345678901234567890n,
      d: new Date(Date.UTC(2024, 0, 2, 3, 4, 5, 6)),
      bad: new Date(Number.NaN),
      m: new Map([["k", 1]]),
      s: new Set([1]),
      bytes: new Uint8Array([1, 2, 3]),
      f: new Float32Array([1]),
      p: new Point(1, 2),
      np: Object.assign(Object.create(null) as object, { z: 1 }),
      shared: [shared, shared],
    };
    const text = new TextDecoder().decode(formats.json.encode(state));
    expect(JSON.parse(text)).toEqual({
      plain: { a: 1, $$t: "user data" },
      n: [{ $t: "NaN" }, { $t: "Infinity" }, { $t: "-Infinity" }, { $t: "-0" }, 1.5],
      u: { $t: "undefined" },
      big: { $t: "bigint", v: "12345678901234567890" },
      d: { $t: "Date", v: "2024-01-02T03:04:05.006Z" },
      bad: { $t: "Date", v: null },
      m: { $t: "Map", v: [["k", 1]] },
      s: { $t: "Set", v: [1] },
      bytes: { $t: "Uint8Array", v: "AQID" },
      f: { $t: "Float32Array", v: "AACAPw==" },
      p: { $t: "class", name: "Point", v: { x: 1, y: 2 } },
      np: { $t: "null-proto", v: { z: 1 } },
      shared: [
        { $t: "def", id: 0, v: { n: 1 } },
        { $t: "ref", id: 0 },
      ],
    });
  });

  it("is much smaller in msgpack", () => {
    const state = {
      rows: Array.from({ length: 1000 }, (_, i) => ({ id: i, name: `n${i}`, ok: i % 2 === 0 })),
    };
    expect(formats.msgpack.encode(state).length).toBeLessThan(formats.json.encode(state).length * 0.8);
  });
});
