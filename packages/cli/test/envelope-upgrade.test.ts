// The SDK's fast envelope against a log written by an earlier SDK (whose envelopes all went through the general
// serializer): recovery decodes the old envelopes to the same state, and the determinism checker sees the
// regenerated outputs in the new layout as divergent during that first recovery only (the upgrade note in
// .changeset/sdk-fast-envelope.md). Real sockets, real files with fdatasync, an in-process coordinator.
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { msgpackSerializer } from "@immortal/checkpoint";
import { FolderRegistry } from "@immortal/coordinator";
import { type Codec, defaultCodec, defineImmortal } from "@immortal/sdk";
import { afterAll, describe, expect, it } from "vitest";
import { inProcessCoordinator, registerAt, startBinding } from "./support/in-process.js";

/** What the SDK's codec was before the fast envelope: everything through the general serializer. */
const earlierCodec: Codec = {
  encode: (v) => msgpackSerializer.encode(v),
  decode: (b) => msgpackSerializer.decode(b),
};

const Chain = defineImmortal({
  name: "Chain",
  state: () => ({ step: 0, sum: 0 }),
  init(ctx) {
    ctx.fork(Chain, ctx.self).step(1, new Uint8Array([1, 2, 3]));
  },
  handlers: {
    step(ctx, n: number, bytes: Uint8Array) {
      ctx.state.step = n;
      ctx.state.sum += bytes.reduce((a, b) => a + b, 0);
      if (n < 10) ctx.fork(Chain, ctx.self).step(n + 1, Uint8Array.of(n, n));
    },
  },
});

const root = mkdtempSync(path.join(os.tmpdir(), "immortal-envelope-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));
const registry = FolderRegistry.open({ dir: path.join(root, "registry") });
const logDir = path.join(root, "logs");

async function session(
  codec: Codec,
): Promise<{ step: number; sum: number; divergences: number; checked: number }> {
  const c = await inProcessCoordinator(registry, "chain", logDir);
  try {
    const i = await startBinding(registry, "chain", Chain, codec);
    await i.whenPrimary();
    const state = () => i.state as { step: number; sum: number };
    const deadline = Date.now() + 30_000;
    while (state().step < 10) {
      if (Date.now() > deadline) throw new Error("timed out waiting for the chain");
      await new Promise((r) => setTimeout(r, 20));
    }
    const stats = c.stats() as { determinism?: { divergences?: number; checkedOutputs?: number } };
    const stopped = c.sessionStopped();
    await i.close();
    await stopped;
    return {
      ...state(),
      divergences: stats.determinism?.divergences ?? 0,
      checked: stats.determinism?.checkedOutputs ?? 0,
    };
  } finally {
    await c.stop();
  }
}

describe("the fast envelope over a log written by an earlier SDK", () => {
  it("recovers the same state; the first recovery's outputs count as divergent, later ones are clean", async () => {
    const base = 32000 + Math.floor(Math.random() * 600);
    await registerAt(registry, "chain", base, logDir);
    const live = await session(earlierCodec);
    expect(live).toMatchObject({ step: 10, sum: 6 + 2 * (1 + 2 + 3 + 4 + 5 + 6 + 7 + 8 + 9) });

    // The new SDK replays the old log: same state; each regenerated fork is in the new layout.
    const first = await session(defaultCodec());
    expect(first).toEqual({ step: 10, sum: live.sum, divergences: 10, checked: 10 });

    // That recovery ended with a becoming-primary checkpoint: nothing old is replayed again.
    const second = await session(defaultCodec());
    expect(second).toEqual({ step: 10, sum: live.sum, divergences: 0, checked: 0 });
  }, 60_000);
});
