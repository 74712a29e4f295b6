// The latency and concurrency workloads' app: A (the caller, hosted by the suite's own process) makes awaitable
// calls to B, a counter whose state every call updates. Both are logged: A → B is an Impulse B's coordinator
// logs before B runs it; B's result comes back as a fork A's coordinator logs before A sees it.
import { defineApp, defineImmortal } from "@immortal/sdk";

export const Counter = defineImmortal({
  name: "BenchCounter",
  state: () => ({ count: 0, byCaller: {} }),
  handlers: {
    /** Adds `n` for caller `who` and returns the new total. */
    add(ctx, who, n) {
      const s = ctx.state;
      s.count += n;
      s.byCaller[who] = (s.byCaller[who] ?? 0) + n;
      return s.count;
    },
  },
});

export const Caller = defineImmortal({
  name: "BenchCaller",
  state: () => ({}),
  handlers: {},
});

export default defineApp({ instances: { a: Caller, b: Counter } });
