import type net from "node:net";

/**
 * Listens on `host:port` exclusively (no port sharing with cluster workers) and resolves with the bound port
 * (the one the kernel chose when `port` is 0), or rejects with the listen error (EADDRINUSE, EACCES, …).
 * Shared by the coordinator, the repro (DebugInstance) coordinator and the what-if replay.
 */
export function listenExclusive(server: net.Server, port: number, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException) => {
      server.off("listening", onListening);
      reject(err);
    };
    const onListening = () => {
      server.off("error", onError);
      resolve((server.address() as net.AddressInfo).port);
    };
    server.once("error", onError);
    server.once("listening", onListening);
    server.listen({ port, host, exclusive: true });
  });
}
