import v8 from "node:v8";
import vm from "node:vm";
import { describe, expect, it } from "vitest";
import { readEnvelopeStream, writeEnvelopeStream } from "../src/index.js";
import { Point, serializers } from "./helpers.js";

// A real collector call makes before/after figures mean something (vitest does not pass --expose-gc).
v8.setFlagsFromString("--expose-gc");
const gc = vm.runInNewContext("gc") as () => void;

const MiB = 1024 * 1024;
const ENTRIES = 3000;
const BLOB = 100 * 1024;
const STATE_BYTES = ENTRIES * BLOB; // ≈ 293 MiB

const formats = serializers();
const patternByte = (entry: number, i: number): number => (entry * 31 + i * 7) & 0xff;

function bigState(): Map<string, Uint8Array> {
  const m = new Map<string, Uint8Array>();
  for (let e = 0; e < ENTRIES; e++) {
    const b = new Uint8Array(BLOB);
    // Only a few bytes differ per entry: enough to catch swapped, lost or repeated entries.
    b[0] = patternByte(e, 0);
    b[BLOB - 1] = patternByte(e, BLOB - 1);
    b[1 + (e % (BLOB - 2))] = 0xee;
    m.set(`entry-${e}`, b);
  }
  return m;
}

interface Peak {
  arrayBuffers: number;
  rss: number;
}

function usage(): Peak {
  const u = process.memoryUsage();
  return { arrayBuffers: u.arrayBuffers, rss: u.rss };
}

/** Passes chunks through, sampling memory after each one (the pipeline's peak is what matters). */
async function* sampled(chunks: Iterable<Uint8Array>, peak: Peak): AsyncGenerator<Uint8Array> {
  let n = 0;
  for (const c of chunks) {
    yield c;
    if (++n % 16 === 0) {
      const u = usage();
      peak.arrayBuffers = Math.max(peak.arrayBuffers, u.arrayBuffers);
      peak.rss = Math.max(peak.rss, u.rss);
    }
  }
}

describe.each(["json", "msgpack"] as const)(
  "%s: a ~300 MB state streamed with bounded extra memory",
  (name) => {
    const s = formats[name];

    it("encode → decode through a pipe holds about one chunk beyond the two states", async () => {
      let state: Map<string, Uint8Array> | undefined = bigState();
      gc();
      const before = usage();
      const peak = { ...before };
      let chunkCount = 0;
      let maxChunk = 0;
      const counted = function* (chunks: Iterable<Uint8Array>) {
        for (const c of chunks) {
          chunkCount++;
          maxChunk = Math.max(maxChunk, c.length);
          yield c;
        }
      };
      let decoded = (await s.decodeStream(sampled(counted(s.encodeStream(state)), peak))) as Map<
        string,
        Uint8Array
      >;

      // The decoded value is itself ~STATE_BYTES; everything beyond it is the pipeline's extra memory.
      const extraArrayBuffers = peak.arrayBuffers - before.arrayBuffers - STATE_BYTES;
      const extraRss = peak.rss - before.rss - STATE_BYTES;
      console.log(
        `${name}: ${chunkCount} chunks (max ${(maxChunk / 1024).toFixed(0)} KiB); extra over the decoded state: ` +
          `arrayBuffers ${(extraArrayBuffers / MiB).toFixed(1)} MiB, rss ${(extraRss / MiB).toFixed(1)} MiB`,
      );
      // Buffering the encoded form once would add ~293 MiB; allow a generous 64 MiB for chunks in flight,
      // allocator slack and the collector running late.
      expect(extraArrayBuffers).toBeLessThan(64 * MiB);
      expect(extraRss).toBeLessThan(128 * MiB);
      expect(maxChunk).toBeLessThanOrEqual(MiB + 64);

      expect(decoded.size).toBe(ENTRIES);
      let e = 0;
      for (const [k, b] of decoded) {
        expect(k).toBe(`entry-${e}`);
        if (
          b.length !== BLOB ||
          b[0] !== patternByte(e, 0) ||
          b[BLOB - 1] !== patternByte(e, BLOB - 1) ||
          b[1 + (e % (BLOB - 2))] !== 0xee
        ) {
          throw new Error(`entry ${e} differs`);
        }
        e++;
      }
      decoded = new Map();
      state = undefined;
      gc();
    });

    it("encoding alone allocates about nothing: large binary values go out as views", () => {
      const state = bigState();
      gc();
      const before = usage();
      const peak = { ...before };
      let total = 0;
      let n = 0;
      for (const c of s.encodeStream(state)) {
        total += c.length;
        if (++n % 16 === 0)
          peak.arrayBuffers = Math.max(peak.arrayBuffers, process.memoryUsage().arrayBuffers);
      }
      expect(total).toBeGreaterThan(STATE_BYTES);
      expect(peak.arrayBuffers - before.arrayBuffers).toBeLessThan(32 * MiB);
    });

    it("an envelope streams the same way, with its length announced up front", async () => {
      const state = { meta: new Point(1, 2), blobs: bigState() };
      gc();
      const before = usage();
      const peak = { ...before };
      const stream = writeEnvelopeStream(state, { serializer: s, appVersion: 7 });
      expect(stream.byteLength).toBeGreaterThan(BigInt(STATE_BYTES));
      const out = await readEnvelopeStream(sampled(stream, peak), { serializers: [s] });
      expect(out.appVersion).toBe(7);
      expect((out.value as typeof state).blobs.size).toBe(ENTRIES);
      expect(peak.arrayBuffers - before.arrayBuffers - STATE_BYTES).toBeLessThan(64 * MiB);
    });
  },
);

describe.each(["json", "msgpack"] as const)("%s: many small objects", (name) => {
  it("are cut into frames of about the chunk size", () => {
    const s = formats[name];
    const users = new Map<number, unknown>();
    for (let i = 0; i < 20_000; i++)
      users.set(i, { id: i, name: `user ${i}`, tags: ["a", "b"], at: new Date(i) });
    const state = { users, orders: Array.from({ length: 20_000 }, (_, i) => ({ i, user: i % 100 })) };
    const chunks = [...s.encodeStream(state, { chunkSize: 16 * 1024 })];
    const sizes = chunks.map((c) => c.length);
    expect(chunks.length).toBeGreaterThan(20);
    // Frames are cut by an estimate of the encoded size; they stay within a small factor of the target.
    expect(Math.max(...sizes)).toBeLessThan(4 * 16 * 1024);
  });
});
