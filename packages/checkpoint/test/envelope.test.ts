import { Readable } from "node:stream";
import { describe, expect, it } from "vitest";
import {
  CheckpointFormatError,
  decodeEnvelopeHeader,
  decodeStreamWithMigrations,
  decodeWithMigrations,
  ENVELOPE_HEADER_SIZE,
  encodeEnvelopeHeader,
  MigrationError,
  migrate,
  NotSerializableError,
  readEnvelope,
  readEnvelopeStream,
  UNKNOWN_LENGTH,
  writeEnvelope,
  writeEnvelopeStream,
} from "../src/index.js";
import { concat, cut, difference, Point, serializers } from "./helpers.js";

const formats = serializers();
const all = [formats.json, formats.msgpack];
const state = { p: new Point(1, 2), m: new Map([["k", new Uint8Array(500).fill(7)]]), n: -0 };

function formatError(fn: () => unknown): CheckpointFormatError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(CheckpointFormatError);
    return e as CheckpointFormatError;
  }
  throw new Error("expected CheckpointFormatError");
}

describe("header", () => {
  it("has the documented little-endian layout", () => {
    const h = encodeEnvelopeHeader({
      formatId: 2,
      appVersion: 0x01020304,
      payloadLength: 0x1122334455667788n,
    });
    expect([...h]).toEqual([
      0x49, 0x4d, 0x43, 0x4b, 1, 2, 0, 0, 4, 3, 2, 1, 0, 0, 0, 0, 0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22,
      0x11,
    ]);
    expect(decodeEnvelopeHeader(h)).toEqual({
      envelopeVersion: 1,
      formatId: 2,
      appVersion: 0x01020304,
      payloadLength: 0x1122334455667788n,
    });
    const unknown = encodeEnvelopeHeader({ formatId: 1, appVersion: 0, payloadLength: undefined });
    expect(new DataView(unknown.buffer).getBigUint64(16, true)).toBe(UNKNOWN_LENGTH);
    expect(decodeEnvelopeHeader(unknown).payloadLength).toBeUndefined();
  });

  it("refuses bad magic, newer versions, unknown flags and short input", () => {
    const h = encodeEnvelopeHeader({ formatId: 1, appVersion: 7, payloadLength: 0n });
    const patched = (i: number, v: number) => {
      const c = h.slice();
      c[i] = v;
      return c;
    };
    expect(formatError(() => decodeEnvelopeHeader(patched(0, 0x58))).code).toBe("BAD_MAGIC");
    expect(formatError(() => decodeEnvelopeHeader(patched(4, 2))).code).toBe("UNSUPPORTED_ENVELOPE_VERSION");
    expect(formatError(() => decodeEnvelopeHeader(patched(6, 1))).code).toBe("UNSUPPORTED_FLAGS");
    expect(formatError(() => decodeEnvelopeHeader(patched(13, 1))).code).toBe("UNSUPPORTED_FLAGS");
    expect(formatError(() => decodeEnvelopeHeader(h.subarray(0, 10))).code).toBe("TRUNCATED");
    expect(formatError(() => decodeEnvelopeHeader(Uint8Array.of(1, 2))).code).toBe("BAD_MAGIC");
  });

  it("refuses out-of-range header fields on write", () => {
    expect(formatError(() => writeEnvelope(1, { appVersion: -1 })).code).toBe("BAD_HEADER_FIELD");
    expect(formatError(() => writeEnvelope(1, { appVersion: 2 ** 32 })).code).toBe("BAD_HEADER_FIELD");
    expect(formatError(() => writeEnvelope(1, { appVersion: 1.5 })).code).toBe("BAD_HEADER_FIELD");
  });
});

describe.each(all.map((s) => [s.format, s] as const))("%s envelope", (_, serializer) => {
  const options = { serializers: all };

  it("round-trips whole, with format and app version", () => {
    const bytes = writeEnvelope(state, { serializer, appVersion: 42 });
    const out = readEnvelope(bytes, options);
    expect(out.format).toBe(serializer.format);
    expect(out.formatId).toBe(serializer.formatId);
    expect(out.appVersion).toBe(42);
    expect(difference(state, out.value)).toBeUndefined();
  });

  it("streams with a measured length that matches the bytes produced", async () => {
    const stream = writeEnvelopeStream(state, { serializer, appVersion: 3, chunkSize: 100 });
    const chunks = [...stream];
    const bytes = concat(chunks);
    expect(stream.byteLength).toBe(BigInt(bytes.length));
    expect(decodeEnvelopeHeader(bytes).payloadLength).toBe(BigInt(bytes.length - ENVELOPE_HEADER_SIZE));
    // The streamed checkpoint reads back through both readers, in any chunking.
    expect(difference(state, readEnvelope(bytes, options).value)).toBeUndefined();
    const read = await readEnvelopeStream(cut(bytes, [1, 5, 23, 24, 25, 60, 400]), options);
    expect(read.appVersion).toBe(3);
    expect(difference(state, read.value)).toBeUndefined();
    expect(() => [...stream]).toThrow(/only once/);
  });

  it("streams with unknown length, read from a Node Readable", async () => {
    const stream = writeEnvelopeStream(state, { serializer, appVersion: 1, length: "unknown" });
    expect(stream.byteLength).toBeUndefined();
    const bytes = concat(stream);
    expect(decodeEnvelopeHeader(bytes).payloadLength).toBeUndefined();
    const out = await readEnvelopeStream(Readable.from(cut(bytes, [30, 31, 500])), options);
    expect(difference(state, out.value)).toBeUndefined();
    expect(difference(state, readEnvelope(bytes, options).value)).toBeUndefined();
  });

  it("validates the state before the first chunk", () => {
    expect(() => writeEnvelopeStream({ f: () => 0 }, { serializer, appVersion: 1 })).toThrow(
      NotSerializableError,
    );
    expect(() =>
      writeEnvelopeStream({ f: () => 0 }, { serializer, appVersion: 1, length: "unknown" }),
    ).toThrow(NotSerializableError);
  });

  it("detects a state mutated between measuring and writing", () => {
    const s = { list: [1, 2, 3] };
    const stream = writeEnvelopeStream(s, { serializer, appVersion: 1 });
    s.list.push(4, 5, 6);
    expect(() => [...stream]).toThrow(/LENGTH_MISMATCH/);
  });

  it("refuses truncation, trailing bytes and unknown formats", async () => {
    const bytes = writeEnvelope(state, { serializer, appVersion: 1 });
    expect(formatError(() => readEnvelope(bytes.subarray(0, bytes.length - 1), options)).code).toBe(
      "TRUNCATED",
    );
    expect(formatError(() => readEnvelope(Buffer.concat([bytes, Uint8Array.of(1)]), options)).code).toBe(
      "TRAILING_BYTES",
    );
    expect(formatError(() => readEnvelope(bytes, { serializers: [] })).code).toBe("UNKNOWN_FORMAT");
    const streamed = concat(writeEnvelopeStream(state, { serializer, appVersion: 1 }));
    await expect(readEnvelopeStream([streamed.subarray(0, streamed.length - 3)], options)).rejects.toThrow(
      /TRUNCATED/,
    );
    await expect(readEnvelopeStream([streamed, Uint8Array.of(0)], options)).rejects.toThrow(/TRAILING_BYTES/);
    await expect(readEnvelopeStream([streamed.subarray(0, 12)], options)).rejects.toThrow(/TRUNCATED/);
    await expect(readEnvelopeStream([], options)).rejects.toThrow(/TRUNCATED/);
  });

  it("stops reading a source as soon as the header is bad", async () => {
    let pulled = 0;
    function* source() {
      pulled++;
      yield Uint8Array.of(0x49, 0x4d, 0x43, 0x4b, 9, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0);
      pulled++;
      yield new Uint8Array(100);
    }
    await expect(readEnvelopeStream(source(), options)).rejects.toThrow(/UNSUPPORTED_ENVELOPE_VERSION/);
    expect(pulled).toBe(1);
  });
});

describe("migrations", () => {
  const v1 = { name: "Ann Lee", balance: 5 };
  const bytes = writeEnvelope(v1, { serializer: formats.json, appVersion: 1 });
  const migrations = {
    1: (s: unknown) => {
      const { name, ...rest } = s as { name: string; balance: number };
      const [first, last] = name.split(" ");
      return { ...rest, first, last };
    },
    2: (s: unknown) => ({ ...(s as object), balance: BigInt((s as { balance: number }).balance) }),
  };

  it("applies each step from the stored version to the current one", async () => {
    const out = decodeWithMigrations(bytes, { currentVersion: 3, migrations });
    expect(out.storedVersion).toBe(1);
    expect(out.appVersion).toBe(3);
    expect(out.value).toEqual({ first: "Ann", last: "Lee", balance: 5n });
    const streamed = await decodeStreamWithMigrations([bytes], { currentVersion: 2, migrations });
    expect(streamed.value).toEqual({ first: "Ann", last: "Lee", balance: 5 });
  });

  it("is a no-op at the current version", () => {
    const out = decodeWithMigrations(bytes, { currentVersion: 1, migrations: {} });
    expect(out.value).toEqual(v1);
    expect(out.storedVersion).toBe(1);
  });

  it("refuses a missing step before running any", () => {
    let ran = false;
    const e = (() => {
      try {
        decodeWithMigrations(bytes, {
          currentVersion: 4,
          migrations: {
            1: (s) => {
              ran = true;
              return s;
            },
            2: (s) => s,
          },
        });
      } catch (err) {
        return err as MigrationError;
      }
    })();
    expect(e).toBeInstanceOf(MigrationError);
    expect(e?.code).toBe("MISSING_MIGRATION");
    expect(e?.fromVersion).toBe(3);
    expect(ran).toBe(false);
  });

  it("refuses a state newer than the code, and wraps a throwing migration", () => {
    expect(() => decodeWithMigrations(bytes, { currentVersion: 0, migrations })).toThrow(/STATE_TOO_NEW/);
    const boom = new Error("boom");
    try {
      migrate(
        { format: "x", formatId: 1, appVersion: 1, value: 1 },
        {
          currentVersion: 2,
          migrations: {
            1: () => {
              throw boom;
            },
          },
        },
      );
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(MigrationError);
      expect((e as MigrationError).code).toBe("MIGRATION_FAILED");
      expect((e as MigrationError).cause).toBe(boom);
    }
    expect(() =>
      migrate({ format: "x", formatId: 1, appVersion: 0, value: 1 }, { currentVersion: -1, migrations }),
    ).toThrow(/BAD_VERSION/);
  });

  it("does not take inherited properties for steps", () => {
    const inherited = Object.create({ 1: (s: unknown) => s }) as Record<number, (s: unknown) => unknown>;
    expect(() => decodeWithMigrations(bytes, { currentVersion: 2, migrations: inherited })).toThrow(
      /MISSING_MIGRATION/,
    );
  });
});
