// Compile-time checks of the typed API: `tsc --noEmit` (run by the test command) fails if any
// `@ts-expect-error` line below stops being an error, i.e. if misuse would compile.
import { describe, expect, it } from "vitest";
import { defineImmortal, type HandlerContext, type Immortal } from "../src/index.js";

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
