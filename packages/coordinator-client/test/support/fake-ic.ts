// A scripted coordinator speaking raw bytes: it accepts the client's two connections, records every byte the
// client writes (decoded as top-level frames), and sends whatever records a test composes. Used for what the
// real coordinator cannot do yet (upgrade, what-if, BecomingPrimary) and for faults it never makes (gaps,
// malformed records, a peer that stops reading).
import { once } from "node:events";
import net from "node:net";
import { MessageDecoder, type MessageStreamEvent } from "@immortal/log";
import {
  CHECKPOINT_SEQUENCE,
  CONTROL_SEQUENCE,
  type ControlType,
  encodeRecord,
  type Message,
  MessageType,
} from "@immortal/wire";
import { encodeEnvelopeHeader } from "../../src/index.js";

export const COMMITTER = 0x1234;

export async function listen(server: net.Server, port = 0, host = "127.0.0.1"): Promise<number> {
  server.listen({ port, host });
  await once(server, "listening");
  return (server.address() as net.AddressInfo).port;
}

export class FakeIc {
  readonly receiveServer = net.createServer();
  readonly sendServer = net.createServer();
  receivePort = 0;
  sendPort = 0;
  /** Client → IC, the accepted receive-port socket. */
  fromClient: net.Socket | undefined;
  /** IC → client, the accepted send-port socket. */
  toClient: net.Socket | undefined;
  /** Top-level frames the client wrote (checkpoint bytes are in `checkpoints`). */
  readonly frames: Message[] = [];
  /** Every checkpoint the client sent, whole (tests use small ones). */
  readonly checkpoints: Buffer[] = [];
  /** Raw bytes from the client, in arrival order. */
  readonly raw: Buffer[] = [];
  /** Order in which the ports were connected. */
  readonly accepts: Array<"receive" | "send"> = [];
  private ckParts: Buffer[] = [];
  private waiters: Array<() => void> = [];
  private connected: Promise<void>;

  /** Connections dropped at once (like a coordinator that still has another binding attached). */
  dropped = 0;

  private dropSend: boolean;

  private constructor(private dropFirst: boolean) {
    this.dropSend = dropFirst;
    let resolve!: () => void;
    this.connected = new Promise((r) => {
      resolve = r;
    });
    const decoder = new MessageDecoder((ev: MessageStreamEvent) => this.onEvent(ev), { layout: "outgoing" });
    this.receiveServer.on("connection", (s) => {
      if (this.dropFirst) {
        this.dropFirst = false;
        this.dropped++;
        s.destroy();
        return;
      }
      this.accepts.push("receive");
      this.fromClient = s;
      s.on("error", () => {});
      s.on("data", (d: Buffer) => {
        this.raw.push(d);
        decoder.push(d);
        this.wake();
      });
      if (this.toClient !== undefined) resolve();
    });
    this.sendServer.on("connection", (s) => {
      if (this.dropSend) {
        this.dropSend = false;
        this.dropped++;
        s.destroy();
        return;
      }
      this.accepts.push("send");
      this.toClient = s;
      s.on("error", () => {});
      if (this.fromClient !== undefined) resolve();
    });
  }

  static async start(
    options: { host?: string; receivePort?: number; sendPort?: number; dropFirst?: boolean } = {},
  ): Promise<FakeIc> {
    const ic = new FakeIc(options.dropFirst === true);
    const host = options.host ?? "127.0.0.1";
    ic.receivePort = await listen(ic.receiveServer, options.receivePort ?? 0, host);
    ic.sendPort = await listen(ic.sendServer, options.sendPort ?? 0, host);
    return ic;
  }

  private onEvent(ev: MessageStreamEvent): void {
    if (ev.type === "checkpointChunk") this.ckParts.push(Buffer.from(ev.bytes));
    else if (ev.type === "checkpointEnd") {
      this.checkpoints.push(Buffer.concat(this.ckParts));
      this.ckParts = [];
    } else {
      this.frames.push(ev);
      if (ev.type === MessageType.Checkpoint && ev.length === 0n) this.checkpoints.push(Buffer.alloc(0));
    }
  }

  private wake(): void {
    const ws = this.waiters;
    this.waiters = [];
    for (const w of ws) w();
  }

  whenConnected(): Promise<void> {
    return this.connected;
  }

  /** Waits until `pred` holds (checked whenever client bytes arrive and every 20 ms). */
  async waitFor(pred: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!pred()) {
      if (Date.now() > deadline) throw new Error(`fake IC: timed out waiting for ${what}`);
      await new Promise<void>((r) => {
        const t = setTimeout(r, 20);
        this.waiters.push(() => {
          clearTimeout(t);
          r();
        });
      });
    }
  }

  send(...records: Uint8Array[]): void {
    for (const r of records) this.toClient!.write(r);
  }

  static record(sequence: number, messages: readonly Message[]): Uint8Array {
    return encodeRecord({ committerId: COMMITTER, sequence, messages });
  }

  static control(type: ControlType): Uint8Array {
    return encodeRecord({ committerId: COMMITTER, sequence: CONTROL_SEQUENCE, messages: [{ type }] });
  }

  /** The recovery checkpoint: record −2, then the client's envelope and `state` as raw bytes. */
  static checkpoint(state: Uint8Array, nextSequence: number): Uint8Array[] {
    const header = encodeEnvelopeHeader(nextSequence);
    return [
      encodeRecord({
        committerId: COMMITTER,
        sequence: CHECKPOINT_SEQUENCE,
        messages: [{ type: MessageType.Checkpoint, length: BigInt(header.length + state.length) }],
      }),
      header,
      state,
    ];
  }

  static rpc(methodId: number, args: Uint8Array = new Uint8Array(0), rpcType: 0 | 1 | 2 = 1): Message {
    return { type: MessageType.RPC, reserved: 0, methodId, rpcType, args };
  }

  /**
   * Plays the first-start handshake: TakeBecomingPrimaryCheckpoint, waits for the InitialMessage and the
   * initial checkpoint, then echoes the InitialMessage as record 0.
   */
  async firstStart(): Promise<void> {
    await this.whenConnected();
    this.send(FakeIc.control(MessageType.TakeBecomingPrimaryCheckpoint));
    await this.waitFor(() => this.checkpoints.length >= 1, "the initial checkpoint");
    const initial = this.frames.find((f) => f.type === MessageType.InitialMessage);
    if (initial === undefined) throw new Error("no InitialMessage before the checkpoint");
    this.send(FakeIc.record(0, [initial]));
  }

  /** Frames of the given type the client sent. */
  ofType<T extends Message["type"]>(type: T): Array<Extract<Message, { type: T }>> {
    return this.frames.filter((f) => f.type === type) as Array<Extract<Message, { type: T }>>;
  }

  async close(): Promise<void> {
    this.fromClient?.destroy();
    this.toClient?.destroy();
    await Promise.all([
      new Promise<void>((r) => this.receiveServer.close(() => r())),
      new Promise<void>((r) => this.sendServer.close(() => r())),
    ]);
  }
}
