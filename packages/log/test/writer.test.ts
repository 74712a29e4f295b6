import { PassThrough, Writable } from "node:stream";
import { checkBytes, encodeMessages, encodeRecord, MessageType, RECORD_HEADER_SIZE } from "@immortal/wire";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { drained, LogError, MessageWriter, writeBuffers, writeCheckpoint } from "../src/index.js";
import { decodeChunks, norm, normalizeEvents, plainMessageArb, recordItemArb } from "./helpers.js";

describe("MessageWriter", () => {
  it("take(): any messages encode exactly as wire's encodeMessages and decode back", () => {
    fc.assert(
      fc.property(
        fc.array(plainMessageArb("outgoing"), { maxLength: 40 }),
        fc.integer({ min: 48, max: 4096 }),
        (ms, slabSize) => {
          const w = new MessageWriter({ slabSize });
          for (const m of ms) w.add(m);
          expect(w.messageCount).toBe(ms.length);
          const bytes = w.take();
          expect(w.messageCount).toBe(0);
          expect(w.byteLength).toBe(0);
          expect(Buffer.from(bytes).equals(Buffer.from(encodeMessages(ms)))).toBe(true);
          const out = decodeChunks({ mode: "messages" }, [bytes]);
          expect(out.error).toBeUndefined();
          expect(normalizeEvents(out.events)).toEqual(ms.map(norm));
        },
      ),
      { numRuns: 300 },
    );
  });

  it("takeRecord(): byte-identical to encodeRecord (check bytes included) and verifies in the decoder", () => {
    fc.assert(
      fc.property(
        fc.array(recordItemArb, { maxLength: 8 }),
        fc.integer({ min: 48, max: 2048 }),
        (items, slabSize) => {
          const w = new MessageWriter({ slabSize });
          const records: Uint8Array[] = [];
          for (const it of items) {
            for (const m of it.messages) w.add(m);
            const rec = w.takeRecord(it);
            expect(Buffer.from(rec).equals(Buffer.from(encodeRecord(it)))).toBe(true);
            records.push(rec);
            if (it.raw !== undefined) records.push(it.raw);
          }
          const out = decodeChunks({ mode: "records" }, records);
          expect(out.error).toBeUndefined();
          const recs = out.events.filter((e) => e.type === "record");
          expect(recs.length).toBe(items.length);
          for (const r of recs) {
            if (r.type !== "record") continue;
            if (r.header.sequence !== -2) expect(r.header.checkBytes).toBe(checkBytes(r.payload));
          }
        },
      ),
      { numRuns: 200 },
    );
  });

  it("never overwrites bytes it handed out, across slab rollovers and oversized batches", () => {
    const w = new MessageWriter({ slabSize: 256 });
    const taken: { view: Uint8Array; copy: Buffer }[] = [];
    for (let i = 0; i < 2000; i++) {
      const size = i % 97 === 0 ? 1000 : i % 13;
      w.add({ type: MessageType.InitialMessage, data: Buffer.alloc(size, i & 0xff) });
      if (i % 5 === 4) {
        const view = i % 10 === 4 ? w.take() : w.takeRecord({ committerId: 1, sequence: i });
        taken.push({ view, copy: Buffer.from(view) });
      }
    }
    for (const t of taken) expect(Buffer.from(t.view).equals(t.copy)).toBe(true);
  });

  it("a message the encoder rejects leaves the batch unchanged", () => {
    const w = new MessageWriter();
    w.add({ type: MessageType.TakeCheckpoint });
    const before = w.byteLength;
    expect(() =>
      w.add({ type: MessageType.RPC, reserved: 0, methodId: 1, rpcType: 7 as 0, args: new Uint8Array(3) }),
    ).toThrow(expect.objectContaining({ code: "MALFORMED" }));
    expect(() => w.add({ type: MessageType.Checkpoint, length: -1n })).toThrow(
      expect.objectContaining({ code: "NEGATIVE_LENGTH" }),
    );
    expect(w.byteLength).toBe(before);
    expect(w.messageCount).toBe(1);
    expect(Buffer.from(w.take())).toEqual(Buffer.from([0x02, 0x02]));
  });

  it("an empty batch makes a header-only record, and clear() drops pending messages", () => {
    const w = new MessageWriter();
    const rec = w.takeRecord({ committerId: 2, sequence: 0 });
    expect(rec.length).toBe(RECORD_HEADER_SIZE);
    expect(
      Buffer.from(rec).equals(Buffer.from(encodeRecord({ committerId: 2, sequence: 0, messages: [] }))),
    ).toBe(true);
    w.add({ type: MessageType.TakeCheckpoint }).clear();
    expect(w.take().length).toBe(0);
  });
});

/** A Writable that records every write / writev call and can be made slow. */
class Recorder extends Writable {
  readonly calls: Buffer[][] = [];
  constructor(
    private readonly delayMs = 0,
    highWaterMark = 16 * 1024,
  ) {
    super({ highWaterMark });
  }
  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.calls.push([chunk]);
    setTimeout(cb, this.delayMs);
  }
  override _writev(chunks: { chunk: Buffer }[], cb: (err?: Error | null) => void): void {
    this.calls.push(chunks.map((c) => c.chunk));
    setTimeout(cb, this.delayMs);
  }
  bytes(): Buffer {
    return Buffer.concat(this.calls.flat());
  }
}

describe("stream helpers", () => {
  it("writeBuffers corks several buffers into one writev", () => {
    const r = new Recorder();
    const bufs = [Buffer.from("ab"), Buffer.from("cd"), Buffer.from("ef")];
    expect(writeBuffers(r, bufs)).toBe(true);
    expect(r.calls).toEqual([bufs]);
  });

  it("writeBuffers reports a full stream and drained() waits for it", async () => {
    const r = new Recorder(5, 8);
    expect(writeBuffers(r, [Buffer.alloc(6), Buffer.alloc(6)])).toBe(false);
    await drained(r);
    expect(r.writableNeedDrain).toBe(false);
    await drained(r); // resolves at once when not over the mark
  });

  it("drained() rejects with STREAM_CLOSED when the stream dies instead of draining", async () => {
    const r = new Recorder(50, 4);
    r.write(Buffer.alloc(10));
    const waiting = drained(r);
    r.destroy(new Error("peer reset"));
    await expect(waiting).rejects.toMatchObject({ name: "LogError", code: "STREAM_CLOSED" });
    await expect(drained(r)).rejects.toBeInstanceOf(LogError);
  });

  it("writeCheckpoint writes the frame then exactly the source bytes, honouring back-pressure", async () => {
    const r = new Recorder(1, 1024);
    let maxPending = 0;
    async function* source() {
      for (let i = 0; i < 50; i++) {
        maxPending = Math.max(maxPending, r.writableLength);
        yield Buffer.alloc(1000, i);
      }
    }
    await writeCheckpoint(r, 50_000n, source());
    expect(maxPending).toBeLessThanOrEqual(2000); // never more than one chunk past the high-water mark
    const out = decodeChunks({ mode: "messages" }, [r.bytes()]);
    expect(out.error).toBeUndefined();
    const ev = normalizeEvents(out.events);
    expect(ev[0]).toEqual({ type: MessageType.Checkpoint, length: 50_000n });
    expect(ev[2]).toBe("checkpointEnd");
  });

  it("writeCheckpoint refuses a source that yields too many bytes, before writing the overrun", async () => {
    const p = new PassThrough();
    const err = await writeCheckpoint(p, 5n, [Buffer.from("abc"), Buffer.from("def")]).catch(
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(LogError);
    expect((err as LogError).code).toBe("CHECKPOINT_LENGTH_MISMATCH");
    p.end();
    const written = Buffer.concat(await p.toArray());
    expect(written.subarray(written.length - 3).toString()).toBe("abc");
  });

  it("writeCheckpoint refuses a source that yields too few bytes", async () => {
    const p = new PassThrough();
    p.resume();
    await expect(writeCheckpoint(p, 10n, [Buffer.from("abc")])).rejects.toMatchObject({
      code: "CHECKPOINT_LENGTH_MISMATCH",
    });
  });
});
