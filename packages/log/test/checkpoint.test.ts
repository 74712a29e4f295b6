import { encodeMessage, encodeRecord, MessageType, type RecordHeader, WireError } from "@immortal/wire";
import { describe, expect, it } from "vitest";
import {
  MessageDecoder,
  type MessageStreamEvent,
  RecordDecoder,
  type RecordStreamEvent,
} from "../src/index.js";

const MiB = 1024 * 1024;
const tail = encodeMessage({ type: MessageType.TakeCheckpoint });

/** The checkpoint's byte at offset i: a pattern that catches lost, repeated or reordered bytes. */
const patternByte = (i: number): number => (i * 131 + (i >>> 13)) & 0xff;

/**
 * Lazily yields a stream of `head`, `length` pattern bytes and `after`, in chunks whose sizes cycle
 * through `sizes`: the head and the tail share chunks with checkpoint bytes.
 */
function* lazyStream(
  head: Uint8Array,
  length: number,
  after: Uint8Array,
  sizes: number[],
): Generator<Uint8Array> {
  let k = 0;
  let offset = -head.length; // stream offset relative to the first checkpoint byte
  const end = length + after.length;
  while (offset < end) {
    const n = Math.min(sizes[k++ % sizes.length]!, end - offset);
    const chunk = Buffer.allocUnsafe(n);
    for (let j = 0; j < n; j++) {
      const i = offset + j;
      chunk[j] = i < 0 ? head[head.length + i]! : i < length ? patternByte(i) : after[i - length]!;
    }
    yield chunk;
    offset += n;
  }
}

interface Tally {
  bytes: number;
  chunks: number;
  mismatches: number;
  others: (MessageStreamEvent | RecordStreamEvent)[];
}

function tallyHandler(t: Tally): (ev: MessageStreamEvent | RecordStreamEvent) => void {
  return (ev) => {
    if (ev.type === "checkpointChunk") {
      const b = ev.bytes;
      for (let j = 0; j < b.length; j++) if (b[j] !== patternByte(t.bytes + j)) t.mismatches++;
      t.bytes += b.length;
      t.chunks++;
    } else {
      t.others.push(ev);
    }
  };
}

describe("large checkpoints stream through with bounded memory", () => {
  it("64 MiB in messages mode, odd chunk sizes, views not copies", () => {
    const LEN = 64 * MiB;
    const head = encodeMessage({ type: MessageType.Checkpoint, length: BigInt(LEN) });
    const t: Tally = { bytes: 0, chunks: 0, mismatches: 0, others: [] };
    const handler = tallyHandler(t);
    let lastChunk: Uint8Array | undefined;
    const dec = new MessageDecoder((ev) => {
      if (ev.type === "checkpointChunk") expect(ev.bytes.buffer).toBe(lastChunk?.buffer);
      handler(ev);
    });
    let maxBuffered = 0;
    for (const c of lazyStream(head, LEN, Buffer.concat([tail, tail]), [MiB + 7, 3, 4 * MiB - 1, 1])) {
      lastChunk = c;
      dec.push(c);
      maxBuffered = Math.max(maxBuffered, dec.bufferedBytes);
    }
    dec.end();
    expect(t.bytes).toBe(LEN);
    expect(t.mismatches).toBe(0);
    expect(t.others.map((e) => e.type)).toEqual([MessageType.Checkpoint, "checkpointEnd", 2, 2]);
    // Only a frame prefix straddling a chunk is ever held, never checkpoint bytes.
    expect(maxBuffered).toBeLessThanOrEqual(16);
  });

  it("64 MiB in records mode, after the record that carries the Checkpoint", () => {
    const LEN = 64 * MiB;
    const head = encodeRecord({
      committerId: 7,
      sequence: -2,
      messages: [{ type: MessageType.Checkpoint, length: BigInt(LEN) }],
    });
    const after = encodeRecord({
      committerId: 7,
      sequence: 0,
      messages: [{ type: MessageType.TakeCheckpoint }],
    });
    const t: Tally = { bytes: 0, chunks: 0, mismatches: 0, others: [] };
    const dec = new RecordDecoder(tallyHandler(t));
    let maxBuffered = 0;
    for (const c of lazyStream(head, LEN, after, [2 * MiB + 13, 10, MiB])) {
      dec.push(c);
      maxBuffered = Math.max(maxBuffered, dec.bufferedBytes);
    }
    dec.end();
    expect(t.bytes).toBe(LEN);
    expect(t.mismatches).toBe(0);
    expect(t.others.map((e) => e.type)).toEqual(["record", "checkpointEnd", "record"]);
    expect(maxBuffered).toBeLessThanOrEqual(64);
  });

  for (const mode of ["messages", "records"] as const) {
    it(`a length above 2^32 (${mode} mode), fed the same 1 MiB chunk repeatedly`, () => {
      const LEN = 2n ** 32n + 12345n;
      const ck = { type: MessageType.Checkpoint, length: LEN } as const;
      const head =
        mode === "messages"
          ? encodeMessage(ck)
          : encodeRecord({ committerId: 1, sequence: -2, messages: [ck] });
      const block = Buffer.alloc(MiB, 0x5a);
      let bytes = 0;
      let chunks = 0;
      const types: string[] = [];
      const onEvent = (ev: MessageStreamEvent | RecordStreamEvent): void => {
        if (ev.type === "checkpointChunk") {
          bytes += ev.bytes.length;
          chunks++;
        } else types.push(String(ev.type));
      };
      const dec = mode === "messages" ? new MessageDecoder(onEvent) : new RecordDecoder(onEvent);
      dec.push(head);
      const full = Number(LEN / BigInt(MiB));
      const memBefore = process.memoryUsage().arrayBuffers;
      for (let i = 0; i < full; i++) {
        dec.push(block);
        if (dec.bufferedBytes !== 0)
          throw new Error(`buffered ${dec.bufferedBytes} bytes inside a checkpoint`);
      }
      expect(dec.checkpointRemaining).toBe(LEN % BigInt(MiB));
      // The last checkpoint bytes and the next frame arrive in one chunk.
      const rest = Number(LEN % BigInt(MiB));
      const next =
        mode === "messages" ? tail : encodeRecord({ committerId: 1, sequence: 0, messages: [{ type: 2 }] });
      dec.push(Buffer.concat([block.subarray(0, rest), next]));
      dec.end();
      expect(BigInt(bytes)).toBe(LEN);
      expect(chunks).toBe(full + 1);
      expect(types).toEqual(
        mode === "messages" ? ["8", "checkpointEnd", "2"] : ["record", "checkpointEnd", "record"],
      );
      expect(process.memoryUsage().arrayBuffers - memBefore).toBeLessThan(64 * MiB);
    });
  }

  it("counts lengths beyond 2^53 exactly, and end() inside them is TRUNCATED", () => {
    const LEN = 2n ** 62n + 1n;
    const dec = new MessageDecoder(() => {});
    dec.push(encodeMessage({ type: MessageType.Checkpoint, length: LEN }));
    dec.push(Buffer.alloc(MiB));
    dec.push(Buffer.alloc(3));
    expect(dec.checkpointRemaining).toBe(LEN - BigInt(MiB) - 3n);
    expect(() => dec.end()).toThrow(expect.objectContaining({ code: "TRUNCATED" }));
    expect(dec.error).toBeInstanceOf(WireError);
  });

  it("a zero-length checkpoint emits its end at once and decoding resumes", () => {
    const events: RecordStreamEvent[] = [];
    const dec = new RecordDecoder((ev) => events.push(ev));
    const ck = encodeRecord({
      committerId: 1,
      sequence: -2,
      messages: [{ type: MessageType.Checkpoint, length: 0n }],
    });
    const next = encodeRecord({ committerId: 1, sequence: 0, messages: [] });
    dec.push(Buffer.concat([ck, next]));
    dec.end();
    expect(events.map((e) => e.type)).toEqual(["record", "checkpointEnd", "record"]);
    const h = (events[2] as { header: RecordHeader }).header;
    expect(h.sequence).toBe(0);
  });
});
