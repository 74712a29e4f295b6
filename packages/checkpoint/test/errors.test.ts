import { describe, expect, it } from "vitest";
import {
  CheckpointFormatError,
  ClassRegistry,
  createJsonSerializer,
  createMsgpackSerializer,
  DeserializationError,
  MAX_DEPTH,
  NotSerializableError,
  RegistryError,
} from "../src/index.js";
import { concat, Point, serializers, Unregistered } from "./helpers.js";

const formats = serializers();

function notSerializable(fn: () => unknown): NotSerializableError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(NotSerializableError);
    return e as NotSerializableError;
  }
  throw new Error("expected NotSerializableError");
}

class SubPoint extends Point {}
class MyMap extends Map<string, number> {}

describe.each(["json", "msgpack"] as const)("%s: NotSerializableError", (name) => {
  const s = formats[name];
  const both = (value: unknown): NotSerializableError => {
    const whole = notSerializable(() => s.encode(value));
    // The streamed encoder validates when called, before producing anything.
    const streamed = notSerializable(() => s.encodeStream(value));
    expect(streamed.message).toBe(whole.message);
    return whole;
  };

  it("names the path of a function", () => {
    const orders = [{}, {}, {}, { customer: () => 1 }];
    const e = both({ orders });
    expect(e.path).toBe("state.orders[3].customer");
    expect(e.code).toBe("UNSUPPORTED_VALUE");
    expect(e.valueKind).toBe("function customer");
  });

  it("names Map values, Map keys, Set elements and odd property names", () => {
    expect(both({ m: new Map([["k", Symbol("s")]]) }).path).toBe('state.m.get("k")');
    expect(
      both({
        m: new Map<unknown, unknown>([
          [1, 1],
          [Symbol("k"), 2],
        ]),
      }).path,
    ).toBe("state.m.keys()[1]");
    expect(both({ s: new Set([1, new WeakMap()]) }).path).toBe("state.s.values()[1]");
    expect(both({ "a b": { "\n": new WeakSet() } }).path).toBe('state["a b"]["\\n"]');
    expect(both(new Map([[new Point(1, 2), () => 0]])).path).toBe("state.get(<instance of class Point>)");
    expect(both(() => 0).path).toBe("state");
  });

  it("refuses an unregistered class instance instead of flattening it, with a hint", () => {
    const e = both({ x: [new Unregistered()] });
    expect(e.path).toBe("state.x[0]");
    expect(e.valueKind).toBe("instance of class Unregistered");
    expect(e.hint).toBe("register the class with registerClass(Unregistered)");
    expect(e.message).toContain("registerClass(Unregistered)");
  });

  it("refuses a subclass of a registered class", () => {
    const e = both({ p: new SubPoint(1, 2) });
    expect(e.hint).toContain("base class Point is registered");
  });

  it("refuses built-ins it cannot restore, with specific hints", () => {
    expect(both({ p: Promise.resolve(1) }).hint).toContain("await");
    expect(both({ w: new WeakMap() }).hint).toContain("Map");
    expect(both({ r: /x/g }).hint).toContain("source and flags");
    expect(both({ e: new Error("x") }).hint).toContain("message");
    expect(both({ n: new Number(1) }).hint).toContain("boxed");
    expect(both({ b: new SharedArrayBuffer(8) }).hint).toContain("ArrayBuffer");
    expect(both({ m: new MyMap() }).valueKind).toBe("instance of class MyMap");
    expect(both({ a: new (class Arr extends Array {})() }).valueKind).toBe("Arr (Array subclass)");
    expect(both({ s: Symbol.iterator }).hint).toContain("string");
  });

  it("reports a throwing getter with its path and cause", () => {
    const o = {
      get boom(): number {
        throw new Error("nope");
      },
    };
    const e = both({ deep: [o] });
    expect(e.code).toBe("GETTER_THREW");
    expect(e.path).toBe("state.deep[0].boom");
    expect((e.cause as Error).message).toBe("nope");
  });

  it("refuses nesting beyond MAX_DEPTH", () => {
    let v: unknown = 1;
    for (let i = 0; i <= MAX_DEPTH; i++) v = { v };
    const e = both(v);
    expect(e.code).toBe("TOO_DEEP");
    expect(e.path.startsWith("state.v.v.v")).toBe(true);
    expect(e.path.length).toBeLessThan(1000);
  });
});

describe("msgpack nesting limit", () => {
  it("reports very deep class nesting as TOO_DEEP, not a crash", () => {
    let v: unknown = null;
    for (let i = 0; i < 990; i++) v = new Point(i, v as number);
    const e = notSerializable(() => formats.msgpack.encode(v));
    expect(e.code).toBe("TOO_DEEP");
    // The JSON format has no such limit below MAX_DEPTH.
    expect(() => formats.json.encode(v)).not.toThrow();
  });
});

describe("registerClass", () => {
  it("registers, is idempotent, and refuses conflicts", () => {
    const r = new ClassRegistry();
    r.register(Point);
    r.register(Point);
    expect(r.byName("Point")?.ctor).toBe(Point);
    expect(() => r.register(Point, "Other")).toThrow(RegistryError);
    expect(() => r.register(SubPoint, "Point")).toThrow(/already registered for another class/);
    r.register(SubPoint, "Sub");
    expect(r.classes.map((c) => c.name)).toEqual(["Point", "Sub"]);
  });

  it("refuses anonymous classes, Object and built-in subclasses", () => {
    const r = new ClassRegistry();
    const anon = (() => class {})();
    expect(() => r.register(anon)).toThrow(/anonymous/);
    r.register(anon, "Named");
    expect(() => r.register(Object)).toThrow(RegistryError);
    expect(() => r.register(MyMap)).toThrow(/derives from Map/);
    expect(() => r.register(class D extends Date {})).toThrow(/derives from Date/);
    expect(() => r.register(class E extends Error {})).toThrow(/derives from Error/);
    expect(() => r.register(class U extends Uint8Array {})).toThrow(/derives from TypedArray/);
  });
});

describe.each(["json", "msgpack"] as const)("%s: decoding errors", (name) => {
  const s = formats[name];
  const other = (name === "json" ? createJsonSerializer : createMsgpackSerializer)({
    registry: new ClassRegistry(),
  });

  it("names a class that is not registered in the decoding process", async () => {
    const bytes = s.encode({ p: new Point(1, 2) });
    expect(() => other.decode(bytes)).toThrow(DeserializationError);
    expect(() => other.decode(bytes)).toThrow(/class "Point" is not registered/);
    const streamed = concat(s.encodeStream({ p: new Point(1, 2) }));
    await expect(other.decodeStream([streamed])).rejects.toThrow(/UNKNOWN_CLASS/);
  });

  it("rejects a truncated or extended streamed payload", async () => {
    const bytes = concat(s.encodeStream({ a: [1, 2, 3], b: new Uint8Array(300) }, { chunkSize: 64 }));
    for (const n of [0, 1, 3, 4, 7, bytes.length - 1]) {
      const e = (() => {
        try {
          s.decode(bytes.subarray(0, n));
        } catch (err) {
          return err;
        }
      })();
      expect(e instanceof CheckpointFormatError || e instanceof DeserializationError).toBe(true);
    }
    expect(() => s.decode(bytes.subarray(0, bytes.length - 1))).toThrow(/TRUNCATED/);
    expect(() => s.decode(Buffer.concat([bytes, Uint8Array.of(0)]))).toThrow(/TRAILING_BYTES/);
    await expect(s.decodeStream([bytes.subarray(0, 10)])).rejects.toThrow(/TRUNCATED/);
  });

  it("rejects an unknown frame type and an unsupported stream version", () => {
    const bytes = concat(s.encodeStream(1));
    const badType = bytes.slice();
    badType[4] = 9;
    expect(() => s.decode(badType)).toThrow(/unknown frame type 9/);
    const badVersion = bytes.slice();
    badVersion[3] = 2;
    expect(() => s.decode(badVersion)).toThrow(/unsupported stream version 2/);
  });
});

describe("tagged JSON decoding errors", () => {
  const s = formats.json;
  const decode = (text: string) => s.decode(new TextEncoder().encode(text));
  it.each([
    ['{"$t":"nope"}', /UNKNOWN_TAG/],
    ['{"$t":5}', /BAD_VALUE/],
    ['{"$x":1}', /unescaped property name/],
    ['{"$t":"ref","id":0}', /BAD_REFERENCE/],
    ['{"$t":"ref","id":-1}', /BAD_REFERENCE/],
    ['[{"$t":"def","id":0,"v":{}},{"$t":"def","id":0,"v":{}}]', /defined twice/],
    ['{"$t":"def","id":0,"v":1}', /def needs an object/],
    ['{"$t":"bigint","v":"1.5"}', /decimal/],
    ['{"$t":"Date","v":"yesterday"}', /invalid date/],
    ['{"$t":"Map","v":[[1]]}', /pair/],
    ['{"$t":"Float64Array","v":"AAA="}', /multiple of 8/],
    ['{"$t":"Uint8Array","v":"A"}', /padded base64/],
    ['{"$t":"class","name":"Nope","v":{}}', /UNKNOWN_CLASS/],
    ['{"$t":"class","name":"Point","v":[]}', /object of properties/],
    ["{", /MALFORMED/],
    ["", /MALFORMED/],
  ])("%s", (text, message) => {
    expect(() => decode(text)).toThrow(DeserializationError);
    expect(() => decode(text)).toThrow(message);
  });

  it("rejects invalid UTF-8", () => {
    expect(() => s.decode(Uint8Array.of(0x22, 0xff, 0x22))).toThrow(/MALFORMED/);
  });
});
