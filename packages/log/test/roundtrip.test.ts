import {
  decodeMessage,
  encodeMessage,
  encodeRecord,
  forEachBatchItem,
  type Message,
  MessageType,
  WireError,
} from "@immortal/wire";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  type ForwardingStreamEvent,
  MessageDecoder,
  type MessageStreamEvent,
  RecordDecoder,
  type RecordStreamEvent,
} from "../src/index.js";
import {
  type DecodeOutcome,
  type DecoderSpec,
  decodeChunks,
  encodeMessageStream,
  encodeRecordStream,
  expectedMessageEvents,
  expectedRecordEvents,
  messageItemArb,
  normalizeEvents,
  oneByteChunks,
  recordItemArb,
  type StreamItem,
  splitAt,
} from "./helpers.js";

const cutsArb = fc.array(fc.nat(), { maxLength: 24 });

/**
 * Random message streams in `layout`, each decoded whole, at random cuts and one byte at a time: `check` gets
 * what decoding with `spec` made of it and the items it was encoded from.
 */
function everyChunking(
  layout: "outgoing" | "incoming",
  spec: DecoderSpec,
  numRuns: number,
  check: (out: DecodeOutcome, items: StreamItem[]) => void,
): void {
  fc.assert(
    fc.property(fc.array(messageItemArb(layout), { maxLength: 30, size: "max" }), cutsArb, (items, cuts) => {
      const buf = encodeMessageStream(items);
      for (const chunks of [[buf], splitAt(buf, cuts), oneByteChunks(buf)])
        check(decodeChunks(spec, chunks), items);
    }),
    { numRuns },
  );
}

describe("messages mode: any stream, any chunking, decodes to the same sequence", () => {
  for (const layout of ["outgoing", "incoming"] as const) {
    it(`${layout} layout`, () => {
      everyChunking(layout, { mode: "messages", layout }, 300, (out, items) => {
        expect(out.error).toBeUndefined();
        expect(normalizeEvents(out.events)).toEqual(expectedMessageEvents(items));
      });
    });
  }
});

describe("messages mode with rawBatches: batches arrive undecoded, everything else as before", () => {
  /** Turns each raw batch back into the message decoding would have made, by walking its items. */
  function decodeRaw(
    events: readonly ForwardingStreamEvent[],
    layout: "outgoing" | "incoming",
  ): MessageStreamEvent[] {
    return events.map((ev) => {
      if (ev.type !== "rawBatch") return ev;
      expect(ev.buf[ev.typeAt]).toBe(MessageType.RPCBatch);
      const messages: Message[] = [];
      forEachBatchItem(ev.buf, ev.typeAt, ev.end, (s, e) => {
        messages.push(decodeMessage(ev.buf, s, layout, e).message);
      });
      return { type: MessageType.RPCBatch, messages } as Message;
    });
  }

  for (const layout of ["outgoing", "incoming"] as const) {
    it(`${layout} layout, any chunking`, () => {
      everyChunking(layout, { mode: "messages", layout, rawBatches: true }, 200, (out, items) => {
        expect(out.error).toBeUndefined();
        const events = out.events as ForwardingStreamEvent[];
        const batches = items.filter((i) => i.message.type === MessageType.RPCBatch).length;
        expect(events.filter((e) => e.type === "rawBatch")).toHaveLength(batches);
        expect(normalizeEvents(decodeRaw(events, layout))).toEqual(expectedMessageEvents(items));
      });
    });
  }

  it("a raw batch's bytes are the stream's own, never shared with a later event", () => {
    const batch = encodeMessage({
      type: MessageType.RPCBatch,
      messages: [
        { type: 0, destination: "b", reserved: 0, methodId: 1, rpcType: 0, args: Buffer.alloc(10, 1) },
      ],
    });
    const two = Buffer.concat([batch, batch]);
    // One byte at a time, each batch is assembled in the decoder's own buffer: a fresh one per batch.
    const out = decodeChunks({ mode: "messages", rawBatches: true }, oneByteChunks(two));
    const [a, b] = out.events as { type: string; buf: Uint8Array }[];
    expect(a!.type).toBe("rawBatch");
    expect(b!.type).toBe("rawBatch");
    expect(a!.buf.buffer === b!.buf.buffer && a!.buf.byteOffset === b!.buf.byteOffset).toBe(false);
  });
});

describe("records mode: any stream, any chunking, decodes to the same sequence", () => {
  it("with check-byte verification", () => {
    fc.assert(
      fc.property(fc.array(recordItemArb, { maxLength: 12, size: "max" }), cutsArb, (items, cuts) => {
        const buf = encodeRecordStream(items);
        const expected = expectedRecordEvents(items);
        for (const verify of [true, false]) {
          for (const chunks of [[buf], splitAt(buf, cuts), oneByteChunks(buf)]) {
            const out = decodeChunks({ mode: "records", verify }, chunks);
            expect(out.error).toBeUndefined();
            expect(normalizeEvents(out.events)).toEqual(expected);
          }
        }
      }),
      { numRuns: 200 },
    );
  });
});

describe("chunk boundaries", () => {
  it("every single split point of a stream with a checkpoint in the middle", () => {
    const items = [
      { message: { type: MessageType.InitialMessage, data: Buffer.from("hello") } },
      { message: { type: MessageType.Checkpoint, length: 37n }, raw: Buffer.alloc(37, 0xab) },
      {
        message: {
          type: MessageType.RPC,
          destination: "peer",
          reserved: 0,
          methodId: -1,
          rpcType: 1 as const,
          args: Buffer.alloc(300, 7),
        },
      },
      { message: { type: MessageType.TakeCheckpoint } },
    ];
    const buf = encodeMessageStream(items);
    const expected = expectedMessageEvents(items);
    for (let a = 0; a <= buf.length; a++) {
      const out = decodeChunks({ mode: "messages" }, [buf.subarray(0, a), buf.subarray(a)]);
      expect(out.error).toBeUndefined();
      expect(normalizeEvents(out.events)).toEqual(expected);
    }
  });

  it("every single split point of a record stream (header, payload and checkpoint bytes)", () => {
    const items = [
      { committerId: 5, sequence: -1, messages: [{ type: MessageType.TakeBecomingPrimaryCheckpoint }] },
      {
        committerId: 5,
        sequence: -2,
        messages: [{ type: MessageType.Checkpoint, length: 50n }],
        raw: Buffer.alloc(50, 0xcd),
      },
      {
        committerId: 5,
        sequence: 0,
        messages: [
          { type: MessageType.RPC, reserved: 0, methodId: 3, rpcType: 0 as const, args: Buffer.alloc(40, 1) },
          { type: MessageType.RPC, reserved: 1, methodId: 4, rpcType: 2 as const, args: Buffer.alloc(9, 2) },
        ],
      },
      { committerId: 5, sequence: 1, messages: [] },
    ];
    const buf = encodeRecordStream(items);
    const expected = expectedRecordEvents(items);
    for (let a = 0; a <= buf.length; a++) {
      for (const b of [a, a + 1, a + 23, a + 24, a + 25]) {
        const out = decodeChunks({ mode: "records" }, splitAt(buf, [a, Math.min(b, buf.length)]));
        expect(out.error).toBeUndefined();
        expect(normalizeEvents(out.events)).toEqual(expected);
      }
    }
  });

  it("decodes whole units as views into the pushed chunk (zero copy)", () => {
    const rpc = {
      type: 0,
      destination: "",
      reserved: 0,
      methodId: 1,
      rpcType: 1,
      args: Buffer.alloc(20, 9),
    } as const;
    const chunk = Buffer.concat([encodeMessage(rpc), encodeMessage(rpc)]);
    const events: MessageStreamEvent[] = [];
    new MessageDecoder((ev) => events.push(ev)).push(chunk);
    expect(events).toHaveLength(2);
    for (const ev of events) {
      expect(ev.type).toBe(MessageType.RPC);
      if (ev.type === MessageType.RPC) expect(ev.args.buffer).toBe(chunk.buffer);
    }

    const rec = encodeRecord({ committerId: 1, sequence: 0, messages: [rpc] });
    const recEvents: RecordStreamEvent[] = [];
    new RecordDecoder((ev) => recEvents.push(ev)).push(rec);
    const r = recEvents[0];
    expect(r?.type).toBe("record");
    if (r?.type === "record") expect(r.payload.buffer).toBe(rec.buffer);
  });

  it("keeps views of a straddling unit valid after later pushes", () => {
    const mk = (fill: number) =>
      encodeMessage({
        type: 0,
        destination: "",
        reserved: 0,
        methodId: 1,
        rpcType: 1,
        args: Buffer.alloc(100, fill),
      });
    const buf = Buffer.concat([mk(1), mk(2), mk(3)]);
    const events: MessageStreamEvent[] = [];
    const dec = new MessageDecoder((ev) => events.push(ev));
    for (const c of splitAt(buf, [50, 150, 250])) dec.push(c);
    dec.end();
    expect(events.map((e) => (e.type === MessageType.RPC ? [...new Set(e.args)] : []))).toEqual([
      [1],
      [2],
      [3],
    ]);
  });

  it("only buffers the incomplete unit, and drops it once complete", () => {
    const msg = encodeMessage({ type: MessageType.InitialMessage, data: Buffer.alloc(1000, 1) });
    const dec = new MessageDecoder(() => {});
    dec.push(msg.subarray(0, 10));
    expect(dec.bufferedBytes).toBe(10);
    dec.push(msg.subarray(10, 600));
    expect(dec.bufferedBytes).toBe(600);
    dec.push(Buffer.concat([msg.subarray(600), msg.subarray(0, 3)]));
    expect(dec.bufferedBytes).toBe(3);
    expect(dec.position).toBe(msg.length);
  });
});

describe("API contract", () => {
  it("rejects input after a WireError, rethrowing the same error", () => {
    const dec = new MessageDecoder(() => {});
    const bad = Buffer.from([0x02, 0x63]); // size 1, type 99
    expect(() => dec.push(bad)).toThrow(WireError);
    const first = dec.error;
    expect(first).toBeInstanceOf(WireError);
    expect(() => dec.push(encodeMessage({ type: MessageType.TakeCheckpoint }))).toThrow(first as Error);
    expect(() => dec.end()).toThrow(first as Error);
  });

  it("delivers the events before a bad unit in the same chunk, and reports its stream position", () => {
    const good = encodeMessage({ type: MessageType.TakeCheckpoint });
    const events: MessageStreamEvent[] = [];
    const dec = new MessageDecoder((ev) => events.push(ev));
    dec.push(good);
    expect(() => dec.push(Buffer.concat([good, good, Buffer.from([0x02, 0x63])]))).toThrow(WireError);
    expect(events).toHaveLength(3);
    expect(dec.position).toBe(3 * good.length);
  });

  it("end() is idempotent and push() after it is a LogError", () => {
    const dec = new RecordDecoder(() => {});
    dec.end();
    dec.end();
    expect(() => dec.push(Buffer.alloc(1))).toThrow(/DECODER_ENDED/);
  });

  it("a handler that throws leaves the decoder failed with that error", () => {
    const oops = new Error("handler bug");
    const dec = new MessageDecoder(() => {
      throw oops;
    });
    expect(() => dec.push(encodeMessage({ type: MessageType.TakeCheckpoint }))).toThrow(oops);
    expect(dec.error).toBe(oops);
    expect(() => dec.push(new Uint8Array(1))).toThrow(oops);
  });

  it("an empty chunk is a no-op", () => {
    const dec = new MessageDecoder(() => {});
    dec.push(new Uint8Array(0));
    dec.end();
    expect(dec.position).toBe(0);
  });
});
