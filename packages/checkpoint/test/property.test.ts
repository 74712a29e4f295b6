import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  CheckpointFormatError,
  DeserializationError,
  ENVELOPE_HEADER_SIZE,
  encodeEnvelopeHeader,
  NotSerializableError,
  readEnvelope,
  readEnvelopeStream,
  STREAM_MAGIC,
  type StateSerializer,
  writeEnvelope,
} from "../src/index.js";
import { concat, cut, difference, Node2, Point, serializers, Unregistered } from "./helpers.js";

const formats = serializers();
const both = [
  ["json", formats.json],
  ["msgpack", formats.msgpack],
] as const;

const RUNS = Number(process.env.FC_RUNS ?? 120);

/** Property names that are awkward for one format or the other. */
const key = fc.oneof(
  fc.constantFrom("__proto__", "$t", "$$t", "$", "", "constructor", "toString", "0", "17", "a.b", "\ud800"),
  fc.string({ unit: "binary", maxLength: 6 }),
);

/** An object with these own enumerable properties, defined (not assigned) so "__proto__" is a real key. */
function objectOf(
  entries: readonly (readonly [string, unknown])[],
  proto: object | null,
): Record<string, unknown> {
  const o = Object.create(proto) as Record<string, unknown>;
  for (const [k, v] of entries) {
    Object.defineProperty(o, k, { value: v, enumerable: true, writable: true, configurable: true });
  }
  return o;
}

const binary = fc.oneof(
  fc.uint8Array({ maxLength: 40 }),
  fc.int8Array({ maxLength: 8 }),
  fc.uint8ClampedArray({ maxLength: 8 }),
  fc.int16Array({ maxLength: 8 }),
  fc.uint16Array({ maxLength: 8 }),
  fc.int32Array({ maxLength: 8 }),
  fc.uint32Array({ maxLength: 8 }),
  fc.float32Array({ maxLength: 8 }),
  fc.float64Array({ maxLength: 8 }),
  fc.bigInt64Array({ maxLength: 4 }),
  fc.bigUint64Array({ maxLength: 4 }),
  fc.uint8Array({ maxLength: 16 }).map((a) => a.buffer.slice(a.byteOffset, a.byteOffset + a.byteLength)),
  fc
    .uint8Array({ maxLength: 16 })
    .map((a) => new DataView(a.buffer.slice(a.byteOffset, a.byteOffset + a.byteLength))),
  fc.uint8Array({ maxLength: 16 }).map((a) => Buffer.from(a)),
);

const leaf = fc.oneof(
  fc.double(), // includes NaN, ±Infinity, -0
  fc.integer(),
  fc.constantFrom(0, -0, Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, 2 ** 53 + 2),
  fc.string({ unit: "binary", maxLength: 12 }), // includes lone surrogates
  fc.string({ unit: "grapheme", maxLength: 8 }),
  fc.boolean(),
  fc.constant(null),
  fc.constant(undefined),
  fc.bigInt(),
  fc.date(), // includes invalid dates
  binary,
);

/** Every supported value, including shared references and cycles (built fresh in `map`, never mutated). */
const { value } = fc.letrec((tie) => ({
  value: fc.oneof({ depthSize: "small", maxDepth: 4, withCrossShrink: true }, leaf, tie("container")),
  container: fc.oneof(
    fc.array(tie("value"), { maxLength: 5 }),
    fc.array(fc.tuple(key, tie("value")), { maxLength: 5 }).map((e) => objectOf(e, Object.prototype)),
    fc.array(fc.tuple(key, tie("value")), { maxLength: 3 }).map((e) => objectOf(e, null)),
    fc.array(fc.tuple(tie("value"), tie("value")), { maxLength: 4 }).map((e) => new Map(e)),
    fc.array(tie("value"), { maxLength: 4 }).map((e) => new Set(e)),
    fc.tuple(tie("value"), tie("value")).map(([x, y]) => new Point(x as number, y as number)),
    // sharing: the same value twice, and inside a Map as key and value
    tie("value").map((v) => [v, { again: v }, new Map([[v, v]])]),
    // cycles: through a plain object, a class instance, a Map, a Set and an array
    tie("value").map((v) => {
      const o: Record<string, unknown> = { v };
      o.self = o;
      return o;
    }),
    tie("value").map((v) => {
      const n = new Node2(v);
      n.next = n;
      return n;
    }),
    tie("value").map((v) => {
      const m = new Map<unknown, unknown>([["v", v]]);
      m.set(m, m);
      return m;
    }),
    tie("value").map((v) => {
      const s = new Set<unknown>([v]);
      s.add(s);
      return s;
    }),
    tie("value").map((v) => {
      const parent = { v, kids: [] as unknown[] };
      parent.kids.push({ up: parent }, [parent]);
      return parent;
    }),
  ),
}));

function streamed(s: StateSerializer, v: unknown, chunkSize: number): Uint8Array {
  return concat(s.encodeStream(v, { chunkSize }));
}

describe.each(both)("%s properties", (_, s) => {
  it("whole: encode → decode gives an equal value", () => {
    fc.assert(
      fc.property(value, (v) => {
        expect(difference(v, s.decode(s.encode(v)))).toBeUndefined();
      }),
      { numRuns: RUNS },
    );
  });

  it("streamed: any chunk size, cut anywhere, decodes to the same value as whole", async () => {
    await fc.assert(
      fc.asyncProperty(
        value,
        fc.integer({ min: 64, max: 2048 }),
        fc.array(fc.nat(), { maxLength: 8 }),
        async (v, chunkSize, offsets) => {
          const bytes = streamed(s, v, chunkSize);
          const fromWhole = s.decode(s.encode(v));
          expect(difference(v, s.decode(bytes))).toBeUndefined();
          const pieces = cut(
            bytes,
            offsets.map((o) => o % (bytes.length + 1)),
          );
          const out = await s.decodeStream(pieces);
          expect(difference(v, out)).toBeUndefined();
          expect(difference(fromWhole, out)).toBeUndefined();
        },
      ),
      { numRuns: RUNS },
    );
  });

  it("streamed: one byte at a time", async () => {
    await fc.assert(
      fc.asyncProperty(value, async (v) => {
        const bytes = streamed(s, v, 64);
        const bytewise = Array.from(bytes, (_b, i) => bytes.subarray(i, i + 1));
        expect(difference(v, await s.decodeStream(bytewise))).toBeUndefined();
      }),
      { numRuns: 30 },
    );
  });

  it("envelope: whole and streamed round-trip with any app version", async () => {
    await fc.assert(
      fc.asyncProperty(value, fc.integer({ min: 0, max: 2 ** 32 - 1 }), async (v, appVersion) => {
        const bytes = writeEnvelope(v, { serializer: s, appVersion });
        const out = readEnvelope(bytes, { serializers: [s] });
        expect(out.appVersion).toBe(appVersion);
        expect(difference(v, out.value)).toBeUndefined();
        const fromStream = await readEnvelopeStream([bytes], { serializers: [s] });
        expect(difference(v, fromStream.value)).toBeUndefined();
      }),
      { numRuns: 40 },
    );
  });

  const typedOnly = (e: unknown): void => {
    if (!(e instanceof CheckpointFormatError || e instanceof DeserializationError)) {
      throw new Error(`unexpected ${String(e)}`, { cause: e });
    }
  };
  const decodeBoth = async (bytes: Uint8Array): Promise<void> => {
    try {
      s.decode(bytes);
    } catch (e) {
      typedOnly(e);
    }
    try {
      await s.decodeStream(cut(bytes, [1, 7, 13]));
    } catch (e) {
      typedOnly(e);
    }
  };

  it("fuzz: random bytes only ever raise typed errors", async () => {
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ maxLength: 300 }), fc.boolean(), async (raw, framed) => {
        // With the stream magic in front, the bytes reach the frame decoder and the codec behind it.
        await decodeBoth(framed ? Buffer.concat([STREAM_MAGIC, raw]) : raw);
      }),
      { numRuns: RUNS * 4 },
    );
  });

  it("fuzz: mutated valid encodings only ever raise typed errors", async () => {
    await fc.assert(
      fc.asyncProperty(
        value,
        fc.boolean(),
        fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 4 }),
        fc.nat(),
        async (v, useStream, edits, truncateAt) => {
          const bytes = (useStream ? streamed(s, v, 64) : s.encode(v)).slice();
          for (const [at, b] of edits) bytes[at % bytes.length] = b;
          await decodeBoth(bytes);
          await decodeBoth(bytes.subarray(0, truncateAt % (bytes.length + 1)));
        },
      ),
      { numRuns: RUNS * 2 },
    );
  });

  it("fuzz: damaged envelopes only ever raise typed errors", async () => {
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ maxLength: 200 }), fc.nat(), async (raw, length) => {
        const header = encodeEnvelopeHeader({
          formatId: s.formatId,
          appVersion: 1,
          payloadLength: BigInt(length % 300),
        });
        const bytes = Buffer.concat([header, raw]);
        expect(bytes.length).toBeGreaterThanOrEqual(ENVELOPE_HEADER_SIZE);
        for (const attempt of [
          () => readEnvelope(bytes, { serializers: [s] }),
          () => readEnvelopeStream([bytes], { serializers: [s] }),
        ]) {
          try {
            await attempt();
          } catch (e) {
            typedOnly(e);
          }
        }
      }),
      { numRuns: RUNS * 2 },
    );
  });
});

// ---- NotSerializableError paths -----------------------------------------------------------------------

type Step =
  | { readonly kind: "prop"; readonly key: string }
  | { readonly kind: "index"; readonly index: number }
  | { readonly kind: "mapValue"; readonly key: string | number }
  | { readonly kind: "setElement"; readonly index: number }
  | { readonly kind: "classProp" };

const step: fc.Arbitrary<Step> = fc.oneof(
  key.map((k) => ({ kind: "prop", key: k }) as const),
  fc.nat({ max: 4 }).map((i) => ({ kind: "index", index: i }) as const),
  fc.oneof(fc.string({ maxLength: 4 }), fc.integer()).map((k) => ({ kind: "mapValue", key: k }) as const),
  fc.nat({ max: 3 }).map((i) => ({ kind: "setElement", index: i }) as const),
  fc.constant({ kind: "classProp" } as const),
);

const bad = fc.constantFrom<[string, () => unknown]>(
  ["function", () => () => 0],
  ["symbol", () => Symbol("s")],
  ["WeakMap", () => new WeakMap()],
  ["Promise", () => Promise.resolve()],
  ["class", () => new Unregistered()],
);

const IDENT = /^[A-Za-z_$][\w$]*$/;

function place(
  steps: readonly Step[],
  leafValue: unknown,
  sibling: unknown,
): { state: unknown; path: string } {
  let v = leafValue;
  let path = "";
  for (let i = steps.length - 1; i >= 0; i--) {
    const s = steps[i]!;
    switch (s.kind) {
      case "prop":
        v = objectOf(
          [
            ["sibling", sibling],
            [s.key, v],
          ].filter((e, j, all) => j === all.length - 1 || e[0] !== s.key) as [string, unknown][],
          Object.prototype,
        );
        path = (IDENT.test(s.key) ? `.${s.key}` : `[${JSON.stringify(s.key)}]`) + path;
        break;
      case "index":
        v = [...Array.from({ length: s.index }, () => sibling), v, sibling];
        path = `[${s.index}]${path}`;
        break;
      case "mapValue":
        v = new Map<unknown, unknown>([
          [`${String(s.key)}x`, sibling],
          [s.key, v],
        ]);
        path = `.get(${typeof s.key === "string" ? JSON.stringify(s.key) : String(s.key)})${path}`;
        break;
      case "setElement":
        v = new Set([...Array.from({ length: s.index }, (_, j) => ({ j, sibling })), v]);
        path = `.values()[${s.index}]${path}`;
        break;
      case "classProp":
        v = new Point(sibling as number, v as number);
        path = `.y${path}`;
        break;
    }
  }
  return { state: v, path: `state${path}` };
}

describe.each(both)("%s: unserializable values", (_, s) => {
  it("raise NotSerializableError naming the exact path, from both encoders, before any output", () => {
    fc.assert(
      fc.property(fc.array(step, { maxLength: 6 }), bad, value, ([...steps], [kind, make], sibling) => {
        const { state, path } = place(steps, make(), sibling);
        for (const encode of [() => s.encode(state), () => s.encodeStream(state)]) {
          try {
            encode();
            expect.unreachable(`${kind} at ${path} was encoded`);
          } catch (e) {
            expect(e).toBeInstanceOf(NotSerializableError);
            expect((e as NotSerializableError).path).toBe(path);
          }
        }
      }),
      { numRuns: RUNS },
    );
  });
});
