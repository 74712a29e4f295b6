import net from "node:net";

export interface ConnectAttemptOptions {
  readonly host: string;
  readonly port: number;
  /** Give up (reject with the last socket error) once this `Date.now()` value has passed. */
  readonly deadline: number;
  readonly retryMinMs: number;
  readonly retryMaxMs: number;
  /** Checked between attempts: the client was closed while connecting. */
  readonly cancelled: () => boolean;
}

export class ConnectCancelled extends Error {}

/**
 * Connects to `host:port`, retrying refused or failed attempts (the coordinator may still be starting) with a
 * delay that grows from `retryMinMs` to `retryMaxMs`, until `deadline`. Rejects with the last error.
 */
export function connectWithRetry(o: ConnectAttemptOptions): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    let delay = o.retryMinMs;
    const attempt = (): void => {
      if (o.cancelled()) {
        reject(new ConnectCancelled("closed while connecting"));
        return;
      }
      const s = net.connect({ host: o.host, port: o.port, noDelay: true });
      // A single attempt must not outlive the deadline (a SYN to a filtered address can hang for minutes).
      const timer = setTimeout(
        () => s.destroy(new Error(`connect to ${o.host}:${o.port} timed out`)),
        Math.max(1, o.deadline - Date.now()),
      );
      const onConnect = (): void => {
        clearTimeout(timer);
        s.off("error", onError);
        // Until the client attaches its own listeners, an early reset must not become an uncaught 'error'; the
        // socket's 'close' still tells the client.
        s.on("error", () => {});
        resolve(s);
      };
      const onError = (err: Error): void => {
        clearTimeout(timer);
        s.off("connect", onConnect);
        s.destroy();
        const left = o.deadline - Date.now();
        if (left <= 0 || o.cancelled()) {
          reject(o.cancelled() ? new ConnectCancelled("closed while connecting") : err);
          return;
        }
        const wait = Math.min(delay, left);
        delay = Math.min(o.retryMaxMs, Math.ceil(delay * 1.5));
        setTimeout(attempt, wait);
      };
      s.once("connect", onConnect);
      s.once("error", onError);
    };
    attempt();
  });
}
