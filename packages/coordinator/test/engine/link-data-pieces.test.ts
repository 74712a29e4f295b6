import { encodeMessage, MessageType, RpcType } from "@immortal/wire";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  DATA_BY_REFERENCE_BYTES,
  decodeLinkFrame,
  encodeData,
  encodeDataPieces,
  LinkFrameReader,
} from "../../src/engine/link-protocol.js";
import { KIND_FORK, KIND_IMPULSE, type OutEntry } from "../../src/engine/state.js";

function rpc(size: number, fill: number): Uint8Array {
  const args = new Uint8Array(size).fill(fill);
  return encodeMessage({ type: MessageType.RPC, reserved: 0, methodId: 3, rpcType: RpcType.Fork, args });
}

describe("DATA frames written as pieces (large RPCs by reference)", () => {
  it("are byte for byte the copied encoding, whatever the mix of sizes", () => {
    const sizes = fc.oneof(
      fc.integer({ min: 0, max: 200 }),
      fc.integer({ min: DATA_BY_REFERENCE_BYTES - 8, max: DATA_BY_REFERENCE_BYTES + 8 }),
      fc.integer({ min: 20_000, max: 70_000 }),
    );
    fc.assert(
      fc.property(fc.array(sizes, { maxLength: 12 }), (ss) => {
        const entries: OutEntry[] = ss.map((s, i) => ({
          kind: i % 3 === 2 ? KIND_IMPULSE : KIND_FORK,
          seq: i + 1,
          epoch: i % 3 === 2 ? 7 : 0,
          frame: rpc(s, i),
        }));
        const { pieces, length } = encodeDataPieces(entries);
        const joined = Buffer.concat(pieces);
        expect(joined.length).toBe(length);
        expect(joined.equals(encodeData(entries))).toBe(true);
        // Large RPCs are not copied: the entry's own buffer is one of the pieces.
        for (const e of entries) {
          if (e.frame.length >= DATA_BY_REFERENCE_BYTES) expect(pieces).toContain(e.frame);
        }
        const frames = new LinkFrameReader().push(joined);
        expect(frames).toHaveLength(1);
        expect(frames[0]).toEqual(decodeLinkFrame(joined.subarray(4)));
      }),
      { numRuns: 25 },
    );
  });
});
