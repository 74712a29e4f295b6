// The SDK against real coordinators (in-process here; see hello-kill.test.ts for separate processes and
// SIGKILL): first start and recovery, forks, calls with continuations, awaitable calls from outside handlers,
// typed failures, deterministic time and randomness, durable timers.
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
  type Handler,
  Immortal,
  type ImmortalType,
  NotRunningError,
  RemoteHandlerError,
  registerClass,
  UnknownMethodError,
} from "../src/index.js";

const root = mkdtempSync(path.join(os.tmpdir(), "imm-sdk-"));
const registry = FolderRegistry.open({ dir: path.join(root, "reg") });
const logDir = path.join(root, "logs");
// Below the ephemeral range, in this file's own range (see tools/testkit/README.md).
let nextPort = 16000 + Math.floor(Math.random() * 600) * 5;
const coordinators = new Map<string, Coordinator>();
const live: Array<Immortal<never, never>> = [];
const logs: string[] = [];

afterAll(async () => {
  for (const i of live) await i.close().catch(() => undefined);
  for (const c of coordinators.values()) await c.stop();
  rmSync(root, { recursive: true, force: true });
});

async function coordinator(name: string): Promise<{ receivePort: number; sendPort: number }> {
  let reg = await registry.get(name);
  if (reg === undefined) {
    const p = nextPort;
    nextPort += 3;
    reg = await registry.put(
      createRegistration({ instanceName: name, receivePort: p, sendPort: p + 1, icPort: p + 2, logDir }),
    );
  }
  if (!coordinators.has(name)) {
    coordinators.set(
      name,
      await startCoordinator({
        instanceName: name,
        registry,
        icPort: reg.icPort!,
        receivePort: reg.receivePort,
        sendPort: reg.sendPort,
        logDir,
        currentVersion: 0,
        logTriggerSizeMB: 1024,
        out: () => {},
        logger: pino({ level: "warn" }),
      }),
    );
  }
  return { receivePort: reg.receivePort, sendPort: reg.sendPort };
}

async function host<S, H extends Record<string, Handler<S>>>(
  name: string,
  type: ImmortalType<S, H>,
): Promise<Immortal<S, H>> {
  const ports = await coordinator(name);
  const i = new Immortal({
    instanceName: name,
    type,
    ...ports,
    codec: defaultCodec(),
    logSink: (l) => logs.push(l),
  });
  live.push(i as never);
  await i.start();
  await i.whenPrimary();
  return i;
}

async function until(pred: () => boolean, what: string, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

const Bank = defineImmortal({
  name: "Bank",
  state: () => ({ balance: 100, history: [] as Array<{ at: number; amount: number; luck: number }> }),
  handlers: {
    deposit(ctx, amount: number): number {
      if (amount <= 0) throw new RangeError(`cannot deposit ${amount}`);
      ctx.state.balance += amount;
      ctx.state.history.push({ at: ctx.now(), amount, luck: ctx.random() });
      return ctx.state.balance;
    },
    balance(ctx): number {
      return ctx.state.balance;
    },
  },
});

const Teller = defineImmortal({
  name: "Teller",
  state: () => ({ started: 0, outcomes: [] as Array<CallOutcome<number>>, ticks: [] as string[] }),
  init(ctx) {
    ctx.state.started = ctx.now();
  },
  handlers: {
    pay(ctx, amount: number) {
      ctx.call(Bank, "bank").deposit(amount).onResult("paid", { amount });
    },
    paid(ctx, outcome: CallOutcome<number>, _context: { amount: number }) {
      ctx.state.outcomes.push(outcome);
    },
    schedule(ctx, name: string, delayMs: number) {
      ctx.setTimer(name, delayMs, "tick", name);
    },
    tick(ctx, name: string) {
      ctx.state.ticks.push(name);
    },
  },
});

type Of<T> = T extends ImmortalType<infer S, infer H> ? Immortal<S, H> : never;
let bank: Of<typeof Bank>;
let teller: Of<typeof Teller>;

describe("the SDK on real coordinators", () => {
  it("runs init once, forks and calls between instances, continuations get results and typed failures", async () => {
    bank = await host("bank", Bank);
    teller = await host("teller", Teller);
    // init runs when record 0 (the first start's InitialMessage) is delivered, just after becoming primary.
    await until(() => teller.state.started > 0, "init");
    // From outside handlers: an awaitable, typed call.
    const after: number = await teller.call(Bank, "bank").deposit(5);
    expect(after).toBe(105);
    // A failure in the callee comes back as a typed error, not a hang or a swallowed exception.
    const failed = await teller
      .call(Bank, "bank")
      .deposit(-1)
      .catch((e: unknown) => e);
    expect(failed).toBeInstanceOf(RemoteHandlerError);
    expect((failed as RemoteHandlerError).remoteName).toBe("RangeError");
    // Calling a method the type does not have is refused at the call site.
    expect(() => (teller.call(Bank, "bank") as unknown as Record<string, () => void>).withdraw!()).toThrow(
      UnknownMethodError,
    );
    // Inside handlers: the call's outcome goes to the continuation handler.
    await teller.impulse(Teller, "teller").pay(10);
    await teller.impulse(Teller, "teller").pay(0);
    await until(() => teller.state.outcomes.length === 2, "both outcomes");
    expect(teller.state.outcomes[0]).toEqual({ ok: true, value: 115 });
    expect(teller.state.outcomes[1]).toMatchObject({ ok: false, error: { name: "RangeError" } });
    expect(bank.state.balance).toBe(115);
  });

  it("recovers to the same state: time and randomness are taken from the log, not the clock", async () => {
    const before = JSON.stringify(bank.state);
    expect(bank.state.history.length).toBe(2);
    await bank.close();
    // A new binding for the same instance: checkpoint + replay of every deposit, computed again.
    bank = await host("bank", Bank);
    expect(JSON.stringify(bank.state)).toBe(before);
    expect(await teller.call(Bank, "bank").balance()).toBe(115);
  });

  it("fires durable timers as impulses, also after a restart", async () => {
    await teller.impulse(Teller, "teller").schedule("soon", 50);
    await until(() => teller.state.ticks.includes("soon"), "the short timer");
    // A timer set, then the instance stops before it is due: the next binding re-arms it from the state.
    await teller.impulse(Teller, "teller").schedule("later", 400);
    await new Promise((r) => setTimeout(r, 100));
    await teller.close();
    const again = await host("teller", Teller);
    await until(() => again.state.ticks.includes("later"), "the re-armed timer", 5000);
    await new Promise((r) => setTimeout(r, 600));
    expect(again.state.ticks.filter((t) => t === "later")).toEqual(["later"]);
    expect(again.state.ticks.filter((t) => t === "soon")).toEqual(["soon"]);
  });

  it("keeps Maps, Sets, BigInts, Dates and registered classes through a checkpoint and recovery", async () => {
    class Money {
      constructor(
        readonly cents: bigint,
        readonly currency: string,
      ) {}
      add(other: Money): Money {
        return new Money(this.cents + other.cents, this.currency);
      }
    }
    registerClass(Money, "test.Money");
    const Ledger = defineImmortal({
      name: "Ledger",
      state: () => ({ accounts: new Map<string, Money>(), tags: new Set<string>(), opened: new Date(0) }),
      handlers: {
        credit(ctx, who: string, cents: bigint) {
          const now = ctx.state.accounts.get(who) ?? new Money(0n, "EUR");
          ctx.state.accounts.set(who, now.add(new Money(cents, "EUR")));
          ctx.state.tags.add(who);
          ctx.state.opened = new Date(ctx.now());
        },
      },
    });
    let ledger = await host("ledger", Ledger);
    await ledger.impulse(Ledger, "ledger").credit("ann", 2n ** 60n);
    await ledger.impulse(Ledger, "ledger").credit("ann", 5n);
    await until(() => ledger.state.accounts.get("ann")?.cents === 2n ** 60n + 5n, "the credits");
    ledger.checkpoint();
    await new Promise((r) => setTimeout(r, 200));
    await ledger.close();
    ledger = await host("ledger", Ledger);
    const ann = ledger.state.accounts.get("ann");
    expect(ann).toBeInstanceOf(Money);
    expect(ann?.add(new Money(1n, "EUR")).cents).toBe(2n ** 60n + 6n);
    expect(ledger.state.tags).toEqual(new Set(["ann"]));
    expect(ledger.state.opened).toBeInstanceOf(Date);
    expect(ledger.state.opened.getTime()).toBeGreaterThan(0);
  });

  it("stops with a clear error naming the value when the state cannot be checkpointed", async () => {
    const Leaky = defineImmortal({
      name: "Leaky",
      state: () => ({ handlers: {} as Record<string, unknown> }),
      handlers: {
        remember(ctx) {
          ctx.state.handlers.onTick = () => "functions are not state";
        },
      },
    });
    const leaky = await host("leaky", Leaky);
    await leaky.impulse(Leaky, "leaky").remember();
    await until(() => typeof leaky.state.handlers.onTick === "function", "the handler");
    leaky.checkpoint();
    const info = await leaky.closed;
    expect(info.reason).toBe("error");
    const text = `${info.error?.message} ${String((info.error as { cause?: unknown } | undefined)?.cause)}`;
    expect(text).toMatch(/NotSerializable|not serializable|cannot be serialized/i);
    expect(text).toMatch(/onTick/);
  });

  it("fails outside calls still waiting when the coordinator goes away, instead of leaving them pending", async () => {
    // Regression (found by tools/chaos): a `main` awaiting a call when the coordinator died hung forever, and
    // `immortal run` then exited with code 13 and no message once nothing else kept it alive.
    const orphan = await host("orphan", Bank);
    const pending = orphan.call(Bank, "nowhere-registered").balance();
    const settled = pending.then(
      () => "answered",
      (err: unknown) => err,
    );
    await coordinators.get("orphan")!.stop();
    coordinators.delete("orphan");
    const outcome = await Promise.race([
      settled,
      new Promise((r) => setTimeout(() => r("still pending"), 10_000)),
    ]);
    expect(outcome).toBeInstanceOf(NotRunningError);
    expect(String((outcome as Error).message)).toMatch(
      /orphan: the coordinator connection ended .* before nowhere-registered\.balance answered/,
    );
  });
});
