import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  decodeMessage,
  decodeMessages,
  encodeMessage,
  encodeMessages,
  frameEnd,
  isControlType,
  type Message,
  MessageType,
  messageSize,
  NEED_MORE,
  type RpcLayout,
  writeMessage,
} from "../src/index.js";
import { attachTo, expectWireError, message, norm, outgoingRpc } from "./helpers.js";

const layouts: RpcLayout[] = ["incoming", "outgoing"];

/** Decodes a byte stream that arrives in chunks, the way a socket reader does, using frameEnd. */
function decodeChunked(chunks: Uint8Array[], layout: RpcLayout): Message[] {
  const out: Message[] = [];
  let pending: Uint8Array = new Uint8Array(0);
  for (const chunk of chunks) {
    const joined = new Uint8Array(pending.length + chunk.length);
    joined.set(pending, 0);
    joined.set(chunk, pending.length);
    let p = 0;
    for (;;) {
      const e = frameEnd(joined, p, joined.length);
      if (e === NEED_MORE) break;
      const d = decodeMessage(joined, p, layout, e);
      expect(d.next).toBe(e);
      // copy out: later chunks must not be able to change decoded views
      out.push(norm(d.message) as Message);
      p = e;
    }
    pending = joined.slice(p);
  }
  expect(pending.length).toBe(0);
  return out;
}

describe("message round trips (every type 0–15)", () => {
  it("the arbitraries cover every message type and both RPC layouts", () => {
    for (const layout of layouts) {
      const seen = new Set(fc.sample(message(layout), 3000).map((m) => m.type));
      expect([...seen].sort((a, b) => a - b)).toEqual([...Array(16).keys()]);
    }
    const dests = fc.sample(outgoingRpc, 500).map((m) => m.destination);
    expect(dests).toContain("");
    expect(dests.some((d) => [...d].some((c) => c.codePointAt(0)! > 0x7f))).toBe(true);
  });

  for (const layout of layouts) {
    it(`encode → decode gives the input back (${layout} layout), and messageSize is the encoded length`, () => {
      fc.assert(
        fc.property(message(layout), (m) => {
          const bytes = encodeMessage(m);
          expect(bytes.length).toBe(messageSize(m));
          const d = decodeMessage(bytes, 0, layout);
          expect(d.next).toBe(bytes.length);
          expect(norm(d.message)).toEqual(norm(m));
          // a re-encode of the decoded message is byte-identical
          expect(Buffer.compare(encodeMessage(d.message), bytes)).toBe(0);
        }),
        { numRuns: 1000 },
      );
    });
  }

  it("writeMessage at an offset writes exactly messageSize bytes and nothing outside them", () => {
    fc.assert(
      fc.property(message("outgoing"), fc.nat(16), (m, at) => {
        const size = messageSize(m);
        const buf = new Uint8Array(at + size + 16).fill(0xa5);
        expect(writeMessage(buf, at, m)).toBe(at + size);
        expect(buf.subarray(0, at).every((b) => b === 0xa5)).toBe(true);
        expect(buf.subarray(at + size).every((b) => b === 0xa5)).toBe(true);
        expect(norm(decodeMessage(buf, at, "outgoing").message)).toEqual(norm(m));
      }),
      { numRuns: 500 },
    );
  });

  it("the size prefix counts the type byte and the data, not itself", () => {
    fc.assert(
      fc.property(message("incoming"), (m) => {
        const bytes = encodeMessage(m);
        const e = frameEnd(bytes, 0, bytes.length);
        expect(e).toBe(bytes.length);
        // the type byte follows the size varint
        let sizeLen = 1;
        while (bytes[sizeLen - 1]! & 0x80) sizeLen++;
        expect(bytes[sizeLen]).toBe(m.type);
        const z = bytes.subarray(0, sizeLen).reduceRight((acc, b) => acc * 128 + (b & 0x7f), 0);
        expect(z / 2).toBe(bytes.length - sizeLen); // sizes are positive: zigzag(n) = 2n
      }),
      { numRuns: 300 },
    );
  });

  it("a destination starting with U+FEFF round-trips (a BOM must not be stripped)", () => {
    for (const destination of ["\uFEFF", "\uFEFFserver", `\uFEFF${"x".repeat(40)}`]) {
      const rpc = {
        type: MessageType.RPC,
        destination,
        reserved: 0,
        methodId: 1,
        rpcType: 1 as const,
        args: new Uint8Array(0),
      };
      expect(norm(decodeMessage(encodeMessage(rpc), 0, "outgoing").message)).toEqual(norm(rpc));
      const attach = { type: MessageType.AttachTo, destination };
      expect(decodeMessage(encodeMessage(attach), 0, "outgoing").message).toEqual(attach);
    }
  });

  it("AttachTo round-trips arbitrary Unicode names", () => {
    fc.assert(
      fc.property(attachTo, (m) => {
        expect(decodeMessage(encodeMessage(m), 0, "outgoing").message).toEqual(m);
      }),
      { numRuns: 300 },
    );
  });

  it("isControlType is exactly {2, 10, 11, 12, 15}", () => {
    const controls = [...Array(256).keys()].filter(isControlType);
    expect(controls).toEqual([2, 10, 11, 12, 15]);
  });
});

describe("message sequences", () => {
  for (const layout of layouts) {
    it(`encodeMessages → decodeMessages gives the same list (${layout})`, () => {
      fc.assert(
        fc.property(fc.array(message(layout), { maxLength: 12 }), (ms) => {
          const bytes = encodeMessages(ms);
          expect(bytes.length).toBe(ms.reduce((n, m) => n + messageSize(m), 0));
          expect(norm(decodeMessages(bytes, layout))).toEqual(norm(ms));
          // and one by one with decodeMessage
          const one: Message[] = [];
          let p = 0;
          while (p < bytes.length) {
            const d = decodeMessage(bytes, p, layout);
            one.push(d.message);
            p = d.next;
          }
          expect(p).toBe(bytes.length);
          expect(norm(one)).toEqual(norm(ms));
        }),
        { numRuns: 400 },
      );
    });
  }

  it("decodeMessages honours start and end", () => {
    fc.assert(
      fc.property(
        fc.array(message("incoming"), { maxLength: 6 }),
        fc.uint8Array({ maxLength: 10 }),
        fc.uint8Array({ maxLength: 10 }),
        (ms, before, after) => {
          const body = encodeMessages(ms);
          const buf = new Uint8Array(before.length + body.length + after.length);
          buf.set(before, 0);
          buf.set(body, before.length);
          buf.set(after, before.length + body.length);
          const got = decodeMessages(buf, "incoming", before.length, before.length + body.length);
          expect(norm(got)).toEqual(norm(ms));
        },
      ),
      { numRuns: 300 },
    );
  });

  it("at every prefix length, frameEnd says NEED_MORE and decodeMessage says TRUNCATED; the full frame decodes", () => {
    fc.assert(
      fc.property(message("outgoing"), (m) => {
        const bytes = encodeMessage(m);
        const n = bytes.length;
        // big frames: check every prefix near both ends, and a sample in between
        const ks =
          n <= 400
            ? [...Array(n).keys()]
            : [...Array(200).keys(), ...Array.from({ length: 200 }, (_, i) => n - 200 + i)];
        for (const k of ks) {
          const prefix = bytes.slice(0, k);
          expect(frameEnd(prefix, 0, k)).toBe(NEED_MORE);
          expect(frameEnd(bytes, 0, k)).toBe(NEED_MORE);
          expectWireError(() => decodeMessage(prefix, 0, "outgoing"), "TRUNCATED");
          expectWireError(() => decodeMessage(bytes, 0, "outgoing", k), "TRUNCATED");
        }
        expect(frameEnd(bytes, 0, n)).toBe(n);
        expect(frameEnd(bytes.slice(0, n), 0, n)).toBe(n);
        // extra bytes after the frame do not change where it ends
        const longer = new Uint8Array(n + 3);
        longer.set(bytes);
        expect(frameEnd(longer, 0, n + 3)).toBe(n);
        expect(decodeMessage(longer, 0, "outgoing").next).toBe(n);
      }),
      { numRuns: 200 },
    );
  });

  for (const layout of layouts) {
    it(`a stream split at arbitrary chunk boundaries decodes to the same list (${layout})`, () => {
      fc.assert(
        fc.property(
          fc.array(message(layout), { maxLength: 10 }),
          fc.array(fc.nat(), { maxLength: 12 }),
          (ms, cutsRaw) => {
            const bytes = encodeMessages(ms);
            const cuts = [...new Set(cutsRaw.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
            const chunks: Uint8Array[] = [];
            let prev = 0;
            for (const c of [...cuts, bytes.length]) {
              chunks.push(bytes.slice(prev, c));
              prev = c;
            }
            expect(decodeChunked(chunks, layout)).toEqual(norm(ms));
          },
        ),
        { numRuns: 300 },
      );
    });
  }

  it("a stream fed one byte at a time decodes to the same list", () => {
    fc.assert(
      fc.property(fc.array(message("incoming"), { maxLength: 5 }), (ms) => {
        const bytes = encodeMessages(ms);
        fc.pre(bytes.length <= 4000); // keep this one small
        const chunks = Array.from(bytes, (b) => Uint8Array.of(b));
        expect(decodeChunked(chunks, "incoming")).toEqual(norm(ms));
      }),
      { numRuns: 100 },
    );
  });
});
