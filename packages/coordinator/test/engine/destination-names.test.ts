// The coordinator's cache of destination names read from its binding's batches. Forwarding rewrites each RPC in
// place over its destination's bytes, so the cache must hold a copy of those bytes: a view would then compare
// against the rewritten bytes and could hand out the previous name for a different destination.
import { encodeMessage, rewriteAsIncoming, rpcSpan, scanRpcFrame, WireError } from "@immortal/wire";
import { describe, expect, it } from "vitest";
import { DestinationNames } from "../../src/engine/outputs.js";

/** One outgoing RPC to `destination` in a buffer of its own, with where its destination lies. */
function rpcTo(destination: string, args = Buffer.alloc(8)) {
  const buf = Buffer.from(
    encodeMessage({ type: 0, destination, reserved: 0, methodId: 1, rpcType: 0, args }),
  );
  return { buf, span: scanRpcFrame(buf, 0, buf.length, "outgoing", rpcSpan()) };
}

describe("DestinationNames", () => {
  it("reads names, empty as self, and reuses the last one", () => {
    const names = new DestinationNames();
    const a = rpcTo("server");
    expect(names.read(a.buf, a.span.destStart, a.span.destEnd)).toBe("server");
    const b = rpcTo("server");
    expect(names.read(b.buf, b.span.destStart, b.span.destEnd)).toBe("server");
    const self = rpcTo("");
    expect(names.read(self.buf, self.span.destStart, self.span.destEnd)).toBe("");
    const c = rpcTo("ünïcode");
    expect(names.read(c.buf, c.span.destStart, c.span.destEnd)).toBe("ünïcode");
  });

  it("is not fooled when the bytes it read are rewritten in place", () => {
    const names = new DestinationNames();
    const first = rpcTo("ab");
    expect(names.read(first.buf, first.span.destStart, first.span.destEnd)).toBe("ab");
    // Forwarding writes the incoming frame's prefix over the destination: these are the bytes left there.
    const { destStart, destEnd } = first.span;
    rewriteAsIncoming(first.buf, first.span);
    const overwritten = Buffer.from(first.buf.subarray(destStart, destEnd)).toString("latin1");
    expect(overwritten).not.toBe("ab");
    // A destination named exactly those bytes is a different destination.
    const second = rpcTo(overwritten);
    expect(names.read(second.buf, second.span.destStart, second.span.destEnd)).toBe(overwritten);
  });

  it("refuses a destination that is not UTF-8", () => {
    const names = new DestinationNames();
    const buf = Buffer.from([0xc3, 0x28]);
    expect(() => names.read(buf, 0, 2)).toThrow(WireError);
  });
});
