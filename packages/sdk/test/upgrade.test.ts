// Live upgrade in the SDK against real in-process coordinators: a call's continuation pending across the
// upgrade keeps working when version 1 has its handler, and the upgrade fails with a typed UpgradeError (and
// commits nothing) when it has not.
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import {
  type Coordinator,
  createRegistration,
  FolderRegistry,
  startCoordinator,
} from "@immortal/coordinator";
import pino from "pino";
import { afterAll, describe, expect, it } from "vitest";
import {
  type CallOutcome,
  defaultCodec,
  defineImmortal,
  Immortal,
  type ImmortalType,
  UpgradeError,
} from "../src/index.js";

const root = mkdtempSync(path.join(os.tmpdir(), "imm-sdk-upgrade-"));
const registry = FolderRegistry.open({ dir: path.join(root, "reg") });
const logDir = path.join(root, "logs");
// Below the ephemeral range, in this file's own range (see tools/testkit/README.md).
const base = 19000 + Math.floor(Math.random() * 400) * 5;
const ports = { asker: base, answerer: base + 3 };
const running: Array<{ stop(): Promise<void> } | { close(): Promise<void> }> = [];

afterAll(async () => {
  for (const r of running.reverse()) await ("stop" in r ? r.stop() : r.close()).catch(() => undefined);
  rmSync(root, { recursive: true, force: true });
});

async function coordinator(name: "asker" | "answerer", upgradeVersion = 0): Promise<Coordinator> {
  const p = ports[name];
  if ((await registry.get(name)) === undefined) {
    await registry.put(
      createRegistration({ instanceName: name, receivePort: p, sendPort: p + 1, icPort: p + 2, logDir }),
    );
  }
  const c = await startCoordinator({
    instanceName: name,
    registry,
    icPort: p + 2,
    receivePort: p,
    sendPort: p + 1,
    logDir,
    currentVersion: 0,
    upgradeVersion,
    logTriggerSizeMB: 1024,
    out: () => {},
    logger: pino({ level: "silent" }),
  });
  running.push(c);
  return c;
}

function node<S>(name: "asker" | "answerer", type: ImmortalType<S, never>, currentVersion = 0) {
  const i = new Immortal({
    instanceName: name,
    type,
    receivePort: ports[name],
    sendPort: ports[name] + 1,
    codec: defaultCodec(),
    currentVersion,
    logSink: () => {},
  });
  running.push(i);
  return i;
}

async function until(pred: () => boolean, what: string, ms = 20_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

const Answerer = defineImmortal({
  name: "Answerer",
  state: () => ({}),
  handlers: { answer: (_ctx, n: number) => n * 2 },
});

const AskerV0 = defineImmortal({
  name: "Asker",
  state: () => ({ asked: 0 }),
  handlers: {
    ask(ctx) {
      ctx.state.asked++;
      ctx.call(Answerer, "answerer").answer(21).onResult("got", "why");
    },
    got(_ctx, _outcome: CallOutcome<number>, _why: string) {},
  },
});

/** Version 1 without the continuation handler the pending call names. */
const AskerLosesGot = defineImmortal({
  name: "Asker",
  version: 1,
  state: () => ({ asked: 0 }),
  handlers: { ask() {} },
  upgradeFrom: { immortal: AskerV0, migrate: (old) => old },
});

const AskerV1 = defineImmortal({
  name: "Asker",
  version: 1,
  state: () => ({ questions: 0, answers: [] as string[] }),
  handlers: {
    ask() {},
    got(ctx, outcome: CallOutcome<number>, why: string) {
      ctx.state.answers.push(`v1 ${why} ${outcome.ok ? outcome.value : "failed"}`);
    },
  },
  upgradeFrom: { immortal: AskerV0, migrate: (old) => ({ questions: old.asked, answers: [] }) },
});

describe("live upgrade in the SDK", () => {
  it("fails a continuation-losing upgrade with UpgradeError, then upgrades with the continuation kept", async () => {
    const c0 = await coordinator("asker");
    const v0 = node("asker", AskerV0 as never);
    await v0.start();
    await v0.whenPrimary();
    await v0.impulse(AskerV0, "asker").ask();
    // The answerer has never run: the call stays pending, with its continuation "got", in the asker's state.
    await until(() => (v0.state as { asked: number }).asked === 1, "the ask");
    await v0.close();
    await c0.stop();

    await coordinator("asker", 1);
    const bad = node("asker", AskerLosesGot as never);
    await bad.start();
    const info = await bad.closed;
    expect(info.reason).toBe("error");
    expect(info.error?.cause).toBeInstanceOf(UpgradeError);
    expect(info.error?.message).toContain('no continuation "got" of a pending call to answerer.answer');
    expect((await registry.get("asker"))?.currentVersion).toBe(0);

    const v1 = node("asker", AskerV1 as never);
    await v1.start();
    await v1.whenPrimary();
    expect(v1.state).toEqual({ questions: 1, answers: [] });
    // The binding is primary once it has sent the upgraded checkpoint; the coordinator commits just after.
    let version = 0;
    await until(() => {
      void registry.get("asker").then((r) => {
        version = r?.currentVersion ?? 0;
      });
      return version === 1;
    }, "the upgrade to commit");
    await coordinator("answerer");
    await node("answerer", Answerer as never).start();
    await until(() => (v1.state as { answers: string[] }).answers.length > 0, "the answer");
    expect(v1.state).toEqual({ questions: 1, answers: ["v1 why 42"] });
  });
});
