// Hello, Immortal: a greeter and a counter, two instances that call each other. Written as if failures never
// happen — kill the process at any moment, start it again, and it carries on: every visitor greeted once,
// every number counted once.
import { type CallOutcome, defineApp, defineImmortal } from "@immortal/sdk";

/** How many visitors the greeter greets (`HELLO_VISITORS` overrides it). */
const VISITORS = Number(process.env.HELLO_VISITORS ?? 200);

export const Counter = defineImmortal({
  name: "Counter",
  state: () => ({ count: 0 }),
  handlers: {
    /** Counts one more visitor and returns their number. */
    next(ctx, _who: string): number {
      ctx.state.count += 1;
      return ctx.state.count;
    },
    /** How many visitors so far. */
    current(ctx): number {
      return ctx.state.count;
    },
  },
});

export const Greeter = defineImmortal({
  name: "Greeter",
  state: () => ({ greeted: 0, numbers: [] as number[], startedAt: 0 }),
  init(ctx) {
    // The first start is a logged message too: this runs exactly once in the instance's life.
    ctx.state.startedAt = ctx.now();
    ctx.fork(Greeter, ctx.self).greet(1);
  },
  handlers: {
    /** Greets visitor `n`: asks the counter for their number; the answer comes back to `counted`. */
    greet(ctx, n: number) {
      ctx.call(Counter, "counter").next(`visitor-${n}`).onResult("counted", n);
    },
    counted(ctx, outcome: CallOutcome<number>, n: number) {
      if (!outcome.ok) {
        ctx.log.error(`the counter failed: ${outcome.error.message}`);
        return;
      }
      ctx.state.greeted += 1;
      ctx.state.numbers.push(outcome.value);
      ctx.log.info(`Hello, visitor-${n}! You are visitor #${outcome.value}.`);
      if (n < VISITORS) ctx.fork(Greeter, ctx.self).greet(n + 1);
      else ctx.log.info(`DONE ${JSON.stringify(report(ctx.state.numbers))}`);
    },
  },
});

/** Whether every visitor number 1..n appears exactly once. */
export function report(numbers: readonly number[]): { greeted: number; exactlyOnce: boolean } {
  const sorted = [...numbers].sort((a, b) => a - b);
  return { greeted: numbers.length, exactlyOnce: sorted.every((v, i) => v === i + 1) };
}

export default defineApp({
  instances: { greeter: Greeter, counter: Counter },
  async main(app) {
    if (!app.hosted.includes("greeter")) return;
    const greeter = app.instance("greeter", Greeter);
    // Outside any handler, calls are awaitable: ask the counter how far it got.
    const count = await greeter.call(Counter, "counter").current();
    process.stdout.write(`[main] the counter is at ${count}\n`);
  },
});
