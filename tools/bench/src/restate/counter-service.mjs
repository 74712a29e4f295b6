// The Restate side of the side-by-side: a keyed virtual object counter, served by the Restate TypeScript SDK
// as an HTTP/2 endpoint that the Restate server invokes. Run as its own process by restate.mjs.
//
//   node counter-service.mjs <port>

// The SDK uses Promise.withResolvers (ES2024), which Node 20 lacks. A faithful shim, installed before the SDK
// is loaded (hence the dynamic import below).
if (typeof Promise.withResolvers !== "function") {
  Promise.withResolvers = function withResolvers() {
    let resolve;
    let reject;
    const promise = new this((res, rej) => {
      resolve = res;
      reject = rej;
    });
    return { promise, resolve, reject };
  };
}

const restate = await import("@restatedev/restate-sdk");

const counter = restate.object({
  name: "Counter",
  handlers: {
    /** Adds `n` to this key's durable count and returns the new total (state kept by Restate). */
    add: async (ctx, n) => {
      const count = ((await ctx.get("count")) ?? 0) + n;
      ctx.set("count", count);
      return count;
    },
  },
});

const port = Number(process.argv[2]);
await restate.endpoint().bind(counter).listen(port);
process.stdout.write(`LISTENING ${port}\n`);
