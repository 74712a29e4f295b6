// The determinism checker inside an ordinary recovery, with an in-process coordinator (real sockets, real files
// with fdatasync) and the SDK binding: a divergence is counted in the coordinator's stats and the instance
// carries on; with strictDeterminism it is a FatalError instead.
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { type Coordinator, FatalError, FolderRegistry } from "@immortal/coordinator";
import { defaultCodec, defineImmortal, type Immortal } from "@immortal/sdk";
import { afterAll, describe, expect, it } from "vitest";
import { inProcessCoordinator, registerAt, startBinding } from "./support/in-process.js";

const Chain = defineImmortal({
  name: "Chain",
  state: () => ({ step: 0 }),
  init(ctx) {
    ctx.fork(Chain, ctx.self).step(1, Math.random());
  },
  handlers: {
    step(ctx, n: number, _x: number) {
      ctx.state.step = n;
      if (n < 10) ctx.fork(Chain, ctx.self).step(n + 1, Math.random());
    },
  },
});

const root = mkdtempSync(path.join(os.tmpdir(), "immortal-strict-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));
const registry = FolderRegistry.open({ dir: path.join(root, "registry") });
const logDir = path.join(root, "logs");

function coordinator(strict: boolean, onFatal?: (e: Error) => void): Promise<Coordinator> {
  return inProcessCoordinator(registry, "chain", logDir, {
    strictDeterminism: strict,
    ...(onFatal ? { onFatal } : {}),
  });
}

async function binding(): Promise<Immortal<{ step: number }, never>> {
  return (await startBinding(registry, "chain", Chain, defaultCodec())) as never;
}

async function until(pred: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 30_000;
  while (!pred()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe("determinism checking during recovery", () => {
  it("--strictDeterminism makes a Math.random() handler fatal; without it the stats count it and it runs on", async () => {
    // Below the ephemeral range, in this file's own range (see tools/testkit/README.md).
    const base = 27000 + Math.floor(Math.random() * 2900);
    await registerAt(registry, "chain", base, logDir);
    const c = await coordinator(false);
    try {
      const live = await binding();
      await until(() => live.state.step === 10, "the live chain");
      const stopped = c.sessionStopped();
      await live.close();
      await stopped;
    } finally {
      await c.stop();
    }

    // Recovery replays log 1: the self-calls come back with other random numbers.
    let fatal: Error | undefined;
    const strict = await coordinator(true, (e) => {
      fatal = e;
    });
    try {
      const b = await binding();
      await until(() => fatal !== undefined, "the fatal error");
      expect(fatal).toBeInstanceOf(FatalError);
      // Record 0 is the first start: its init forked step 1 with a random number (the self stream's fork 1).
      expect(fatal!.message).toBe(
        "--strictDeterminism: DIVERGENCE at input record 0: output fork 1 to chain (self) differs from the live run",
      );
      await b.close();
    } finally {
      await strict.stop();
    }

    // The fatal stop published nothing: the next recovery replays the same log, reports, and carries on.
    const lenient = await coordinator(false);
    try {
      const recovered = await binding();
      await recovered.whenPrimary();
      expect(recovered.state.step).toBe(10);
      const stats = lenient.stats() as { determinism?: { divergences?: number; checkedOutputs?: number } };
      expect(stats.determinism).toMatchObject({ checkedOutputs: 10, divergences: 10 });
      await recovered.close();
    } finally {
      await lenient.stop();
    }
  }, 60_000);
});
