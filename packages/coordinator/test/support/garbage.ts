import net from "node:net";

/**
 * Connects to `port` on 127.0.0.1, writes `bytes`, half-closes, and resolves "closed" once the other side
 * closes the connection, or "open" if it is still open after `ms`. For malformed-input tests: a server that
 * refuses garbage must close the connection, not hang on it. Incoming bytes are read and dropped so that the
 * close is seen even when the server answers first. Shared with tools/chaos (fault scenario 12).
 */
export function sendGarbage(port: number, bytes: Uint8Array, ms = 2000): Promise<"closed" | "open"> {
  return new Promise((resolve) => {
    const s = net.connect({ port, host: "127.0.0.1" });
    const t = setTimeout(() => {
      s.destroy();
      resolve("open");
    }, ms);
    s.on("error", () => {});
    s.on("close", () => {
      clearTimeout(t);
      resolve("closed");
    });
    s.on("connect", () => s.end(bytes));
    s.resume();
  });
}
