// Regression (found by tools/chaos scenario 13, disk full end to end): an outbound link whose socket was blocked
// (the receiver stopped reading, so a write returned false) when the connection died stayed "blocked" on the next
// connection — that socket never emits "drain", since nothing was written to it — and never sent again. The
// sender sat with everything pending until its own coordinator restarted. Here a fake receiver stops reading,
// then drops the connection; the second connection must receive every entry again.
import net from "node:net";
import { RpcType } from "@immortal/wire";
import pino from "pino";
import { afterEach, describe, expect, it } from "vitest";
import { encodeWelcome } from "../../src/engine/link-protocol.js";
import { OutboundLink } from "../../src/engine/links.js";
import { OutputStream } from "../../src/engine/outputs.js";
import { ZERO_WATERMARK } from "../../src/engine/state.js";

const ENTRIES = 2000;
const FRAME = 8192;

let server: net.Server | undefined;
let link: OutboundLink | undefined;
afterEach(async () => {
  link?.close();
  await new Promise<void>((r) => (server === undefined ? r() : server.close(() => r())));
});

describe("outbound link", () => {
  it("sends again on a new connection after the old one died while blocked", async () => {
    let connections = 0;
    let first: net.Socket | undefined;
    let firstBlocked!: () => void;
    const blocked = new Promise<void>((r) => {
      firstBlocked = r;
    });
    let received = 0;
    let allReceived!: () => void;
    const done = new Promise<void>((r) => {
      allReceived = r;
    });
    server = net.createServer((s) => {
      connections++;
      s.on("error", () => {});
      s.write(encodeWelcome(ZERO_WATERMARK, "receiver"));
      if (connections === 1) {
        first = s;
        // Read nothing: the sender's socket fills up and its writes start returning false.
        s.pause();
        firstBlocked();
        return;
      }
      // Counting bytes is enough: the payloads are not RPCs, and every entry is resent whole after WELCOME.
      s.on("data", (chunk: Buffer) => {
        received += chunk.length;
        if (received >= ENTRIES * FRAME) allReceived();
      });
    });
    await new Promise<void>((r) => server!.listen(0, "127.0.0.1", () => r()));
    const port = (server.address() as net.AddressInfo).port;

    const stream = new OutputStream("receiver", undefined, 1);
    for (let i = 0; i < ENTRIES; i++) stream.push(new Uint8Array(FRAME).fill(i & 0xff), RpcType.Fork);
    link = new OutboundLink("receiver", stream, {
      self: "sender",
      selfRegistrationId: "sender-id",
      lookup: async () => ({ host: "127.0.0.1", port }),
      logger: pino({ level: "silent" }),
    });
    await blocked;
    // Wait until the link has written everything to the first socket (most of it buffered), then drop it.
    const deadline = Date.now() + 20_000;
    while (link.stats.sentBytes < ENTRIES * FRAME && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 20));
    first!.destroy();
    await done;
    expect(connections).toBe(2);
    expect(received).toBeGreaterThanOrEqual(ENTRIES * FRAME);
  }, 30_000);
});
