// Compile-time checks of the typed API: `tsc --noEmit` (run by the test command) fails if any
// `@ts-expect-error` line below stops being an error, i.e. if misuse would compile.
import { describe, expect, it } from "vitest";
import { defineImmortal, type HandlerContext, type Immortal, type StateOf } from "../src/index.js";

const Counter = defineImmortal({
  name: "Counter",
  state: () => ({ count: 0 }),
  handlers: {
    add(ctx, by: number): number {
      ctx.state.count += by;
      return ctx.state.count;
    },
    label(_ctx, name: string, when: Date): string {
      return `${name}@${when.toISOString()}`;
    },
  },
});

function misuse(
  ctx: HandlerContext<{ n: number }>,
  node: Immortal<{ n: number }, Record<string, never>>,
): void {
  ctx.fork(Counter, "c").add(1);
  ctx.call(Counter, "c").add(2).onResult("done");
  // @ts-expect-error: wrong argument type
  ctx.fork(Counter, "c").add("1");
  // @ts-expect-error: missing argument
  ctx.fork(Counter, "c").label("x");
  // @ts-expect-error: no such method
  ctx.fork(Counter, "c").subtract(1);
  // @ts-expect-error: handlers cannot send impulses (only outside code can)
  ctx.impulse(Counter, "c");
  // @ts-expect-error: state is typed
  ctx.state.m = 1;
  const n: Promise<number> = node.call(Counter, "c").add(1);
  // @ts-expect-error: the result of add is a number, not a string
  const s: Promise<string> = node.call(Counter, "c").add(1);
  void n;
  void s;
}

describe("typed API", () => {
  it("is checked by the compiler (see the @ts-expect-error lines)", () => {
    expect(typeof misuse).toBe("function");
  });
});

// Live upgrade: the migration's input is the old version's state type, its output the new one's.
const CounterV0 = defineImmortal({
  name: "Counter",
  state: () => ({ count: 0 }),
  handlers: { add: (ctx, by: number) => (ctx.state.count += by) },
});
const CounterV1 = defineImmortal({
  name: "Counter",
  version: 1,
  state: () => ({ total: 0, adds: 0 }),
  handlers: { add: (ctx, by: number) => (ctx.state.total += by) },
  upgradeFrom: { immortal: CounterV0, migrate: (old) => ({ total: old.count, adds: 0 }) },
  // (a wrong migration is caught below)
});
function upgradeMisuse(): void {
  const typed: (old: StateOf<typeof CounterV0>) => StateOf<typeof CounterV1> = (old) => ({
    total: old.count,
    adds: 0,
  });
  defineImmortal({
    version: 1,
    state: () => ({ total: 0 }),
    handlers: {},
    // @ts-expect-error: the old state has no field "total"
    upgradeFrom: { immortal: CounterV0, migrate: (old) => ({ total: old.total }) },
  });
  defineImmortal({
    version: 1,
    state: () => ({ total: 0 }),
    handlers: {},
    // @ts-expect-error: the migration must return the new state type
    upgradeFrom: { immortal: CounterV0, migrate: (old) => ({ count: old.count }) },
  });
  void typed;
}
describe("upgrade types", () => {
  it("compile-time checks only", () => {
    expect(typeof upgradeMisuse).toBe("function");
    expect(CounterV1.version).toBe(1);
  });
});
