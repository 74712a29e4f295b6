import net from "node:net";

/** Ports handed out by this process, so that two asked for before either is bound are never the same. */
const handedOut = new Set<number>();

/**
 * A TCP port on 127.0.0.1 that the kernel reports free now and that `taken` (by default every port this
 * process was handed before) does not hold; it is added to `taken`. Used where a port must be chosen before
 * the process that listens on it starts (a registration, a child process).
 */
export async function freePort(taken: Set<number> = handedOut): Promise<number> {
  for (;;) {
    const port = await new Promise<number>((resolve, reject) => {
      const s = net.createServer();
      s.once("error", reject);
      s.listen(0, "127.0.0.1", () => {
        const p = (s.address() as net.AddressInfo).port;
        s.close(() => resolve(p));
      });
    });
    if (!taken.has(port)) {
      taken.add(port);
      return port;
    }
  }
}
