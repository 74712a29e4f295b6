/**
 * Forwarding without decoding: `scanRpcFrame`, `forEachBatchItem` and `rewriteAsIncoming` must agree with
 * `decodeMessage`/`encodeMessage` on every input — the same fields for valid frames, the same refusal (a
 * `WireError`) for malformed ones — because the coordinator forwards its binding's RPCs with them.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  copyAsIncoming,
  decodeMessage,
  encodeMessage,
  forEachBatchItem,
  type IncomingRpc,
  MessageType,
  type OutgoingRpc,
  outgoingRpcSize,
  type RpcLayout,
  readUtf8,
  rewriteAsIncoming,
  rpcSpan,
  scanRpcFrame,
  WireError,
  writeOutgoingRpc,
} from "../src/index.js";
import { batchable, bytes, expectWireError, hex, rpc } from "./helpers.js";

const layouts: RpcLayout[] = ["incoming", "outgoing"];

/** What `decodeMessage` makes of `b` as one RPC frame: its fields, or the error code it throws. */
function viaDecode(b: Uint8Array, layout: RpcLayout): unknown {
  try {
    const { message, next } = decodeMessage(b, 0, layout);
    if (message.type !== MessageType.RPC) return { notRpc: message.type };
    if (next !== b.length) return { trailing: b.length - next };
    const m = message as OutgoingRpc;
    return {
      destination: layout === "outgoing" ? m.destination : undefined,
      reserved: m.reserved,
      methodId: m.methodId,
      rpcType: m.rpcType,
      args: Array.from(m.args),
    };
  } catch (e) {
    if (!(e instanceof WireError)) throw e;
    return { error: true };
  }
}

/** The same through `scanRpcFrame` (and `readUtf8` for the destination). */
function viaScan(b: Uint8Array, layout: RpcLayout): unknown {
  try {
    const s = scanRpcFrame(b, 0, b.length, layout, rpcSpan());
    return {
      destination: layout === "outgoing" ? readUtf8(b, s.destStart, s.destEnd) : undefined,
      reserved: b[s.bodyStart],
      methodId: s.methodId,
      rpcType: s.rpcType,
      args: Array.from(b.subarray(s.argsStart, s.end)),
    };
  } catch (e) {
    if (!(e instanceof WireError)) throw e;
    return { error: true };
  }
}

describe("scanRpcFrame", () => {
  for (const layout of layouts) {
    it(`finds the fields decodeMessage decodes (${layout} layout)`, () => {
      fc.assert(
        fc.property(rpc(layout), (m) => {
          const b = encodeMessage(m);
          expect(viaScan(b, layout)).toEqual(viaDecode(b, layout));
        }),
      );
    });

    it(`refuses what decodeMessage refuses, with a WireError (${layout} layout)`, () => {
      // Random bytes, and valid frames with one byte changed or cut short: the two must agree on each.
      const damaged = fc
        .tuple(rpc(layout), fc.nat(), fc.integer({ min: 0, max: 255 }), fc.boolean())
        .map(([m, at, v, cut]) => {
          const b = encodeMessage(m).slice();
          const i = at % b.length;
          if (cut) return b.subarray(0, i);
          b[i] = v;
          return b;
        });
      fc.assert(
        fc.property(fc.oneof(fc.uint8Array({ maxLength: 24 }), damaged), (b) => {
          const d = viaDecode(b, layout);
          const s = viaScan(b, layout);
          // decodeMessage accepts other message types and trailing bytes; scanRpcFrame wants one RPC exactly.
          if (typeof d === "object" && d !== null && ("notRpc" in d || "trailing" in d)) {
            expect(s).toEqual({ error: true });
          } else {
            expect(s).toEqual(d);
          }
        }),
        { numRuns: 2000 },
      );
    });
  }

  it("refuses a frame that is not an RPC, or has bytes after it, with a typed error", () => {
    expectWireError(() => scanRpcFrame(hex("0202"), 0, 2, "incoming", rpcSpan()), "UNKNOWN_TYPE");
    // RPC [size 4][0][reserved 0][method 0][type 0] then one stray byte
    const b = hex("08 00 00 00 00 07");
    expectWireError(() => scanRpcFrame(b, 0, b.length, "incoming", rpcSpan()), "MALFORMED");
    expectWireError(() => scanRpcFrame(b, 0, 3, "incoming", rpcSpan()), "TRUNCATED");
  });
});

describe("rewriteAsIncoming and copyAsIncoming", () => {
  it("produce exactly the incoming frame encodeMessage would, in place or as a copy", () => {
    fc.assert(
      fc.property(rpc("outgoing"), fc.nat({ max: 5 }), (m, pad) => {
        const out = m as OutgoingRpc;
        const frame = encodeMessage(out);
        // The frame somewhere inside a larger buffer, as in a socket chunk.
        const buf = new Uint8Array(pad + frame.length + 3).fill(0xee);
        buf.set(frame, pad);
        const s = scanRpcFrame(buf, pad, pad + frame.length, "outgoing", rpcSpan());
        const incoming: IncomingRpc = {
          type: 0,
          reserved: out.reserved,
          methodId: out.methodId,
          rpcType: out.rpcType,
          args: out.args,
        };
        const copy = copyAsIncoming(buf, s);
        expect(copy.buffer).not.toBe(buf.buffer);
        expect(Array.from(copy)).toEqual(Array.from(encodeMessage(incoming)));
        const view = rewriteAsIncoming(buf, s);
        expect(Array.from(view)).toEqual(Array.from(encodeMessage(incoming)));
        expect(view.buffer).toBe(buf.buffer);
        // Nothing outside the outgoing frame was touched.
        expect(Array.from(buf.subarray(0, pad))).toEqual(new Array(pad).fill(0xee));
        expect(Array.from(buf.subarray(pad + frame.length))).toEqual([0xee, 0xee, 0xee]);
      }),
    );
  });

  it("leaves an incoming-layout frame as it was (nothing to drop)", () => {
    fc.assert(
      fc.property(rpc("incoming"), (m) => {
        const b = encodeMessage(m).slice();
        const before = Array.from(b);
        const view = rewriteAsIncoming(b, scanRpcFrame(b, 0, b.length, "incoming", rpcSpan()));
        expect(Array.from(view)).toEqual(before);
      }),
    );
  });
});

describe("forEachBatchItem", () => {
  for (const layout of layouts) {
    it(`visits the items decodeMessage decodes, in order (${layout} layout)`, () => {
      const batch = fc.oneof(
        fc.array(batchable(layout), { maxLength: 8 }).map((messages) => ({ type: 5, messages }) as const),
        fc
          .array(batchable(layout), { maxLength: 8 })
          .chain((messages) =>
            fc
              .integer({ min: 0, max: messages.length })
              .map((replayableCount) => ({ type: 13, replayableCount, messages }) as const),
          ),
      );
      fc.assert(
        fc.property(batch, (m) => {
          const b = encodeMessage(m);
          const first = decodeMessage(b, 0, layout);
          const items: unknown[] = [];
          let p = 0; // the type byte follows the size prefix's last byte
          while ((b[p]! & 0x80) !== 0) p++;
          forEachBatchItem(b, p + 1, b.length, (s, e) => items.push(decodeMessage(b, s, layout, e).message));
          expect(items).toEqual((first.message as unknown as { messages: unknown[] }).messages);
        }),
      );
    });
  }

  it("refuses what decodeMessage refuses in a batch's framing", () => {
    const visitNothing = () => {};
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 30 }), (body) => {
        // [size][type 5][body…]: decodeMessage decodes the items too, so compare only on item-free failures.
        const b = new Uint8Array(2 + body.length);
        b[0] = (1 + body.length) * 2;
        b[1] = 5;
        b.set(body, 2);
        let scanned: "ok" | "error" = "ok";
        try {
          forEachBatchItem(b, 1, b.length, visitNothing);
        } catch (e) {
          expect(e).toBeInstanceOf(WireError);
          scanned = "error";
        }
        let decoded: "ok" | "error" = "ok";
        try {
          decodeMessage(b, 0, "incoming");
        } catch {
          decoded = "error";
        }
        // Framing errors are found by both; item contents only by decodeMessage.
        if (scanned === "error") expect(decoded).toBe("error");
      }),
      { numRuns: 2000 },
    );
    expectWireError(() => forEachBatchItem(hex("0a 05 04 04 00"), 1, 5, visitNothing), "MALFORMED");
    expectWireError(() => forEachBatchItem(hex("04 05 01"), 1, 3, visitNothing), "NEGATIVE_LENGTH");
    expectWireError(() => forEachBatchItem(hex("04 00 00"), 1, 3, visitNothing), "UNKNOWN_TYPE");
  });

  it("hands a frame it visits to scanRpcFrame intact (args of any size)", () => {
    fc.assert(
      fc.property(fc.array(bytes, { minLength: 1, maxLength: 4 }), (argsList) => {
        const messages = argsList.map(
          (args, i) =>
            ({ type: 0, destination: `d${i}`, reserved: 0, methodId: i, rpcType: 0, args }) as const,
        );
        const b = encodeMessage({ type: MessageType.RPCBatch, messages });
        let p = 0;
        while ((b[p]! & 0x80) !== 0) p++;
        const seen: number[] = [];
        const span = rpcSpan();
        forEachBatchItem(b, p + 1, b.length, (s, e) => {
          scanRpcFrame(b, s, e, "outgoing", span);
          seen.push(span.methodId);
          expect(readUtf8(b, span.destStart, span.destEnd)).toBe(`d${span.methodId}`);
        });
        expect(seen).toEqual(argsList.map((_, i) => i));
      }),
    );
  });
});

describe("writeOutgoingRpc", () => {
  it("writes the bytes encodeMessage writes, with the destination given as UTF-8 bytes", () => {
    fc.assert(
      fc.property(rpc("outgoing"), (m) => {
        const out = m as OutgoingRpc;
        const dest = Buffer.from(out.destination, "utf8");
        const size = outgoingRpcSize(dest.length, out.methodId, out.args.length);
        const expected = encodeMessage(out);
        expect(size).toBe(expected.length);
        const buf = new Uint8Array(size + 2).fill(0xee);
        const end = writeOutgoingRpc(buf, 1, dest, out.reserved, out.methodId, out.rpcType, out.args);
        expect(end).toBe(1 + size);
        expect(Array.from(buf.subarray(1, end))).toEqual(Array.from(expected));
        expect([buf[0], buf[end]]).toEqual([0xee, 0xee]);
      }),
    );
  });

  it("refuses fields out of range with a typed error and writes nothing", () => {
    const bad: [number, number, number, WireErrorCodeLike][] = [
      [256, 0, 0, "OUT_OF_RANGE"], // reserved byte
      [0, 2 ** 31, 0, "OUT_OF_RANGE"], // method ID beyond int32
      [0, 1.5, 0, "OUT_OF_RANGE"],
      [0, 0, 3, "MALFORMED"], // RPC type
    ];
    for (const [reserved, methodId, rpcType, code] of bad) {
      const buf = new Uint8Array(64).fill(0xee);
      expectWireError(
        () => writeOutgoingRpc(buf, 0, Buffer.from("x"), reserved, methodId, rpcType as 0, new Uint8Array(3)),
        code,
      );
      expect(buf.every((b) => b === 0xee)).toBe(true);
    }
  });
});

type WireErrorCodeLike = "OUT_OF_RANGE" | "MALFORMED";
