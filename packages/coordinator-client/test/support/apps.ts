// Small deterministic apps the tests drive the client with.
import { MessageType } from "@immortal/wire";
import {
  type ClientApp,
  type CoordinatorClient,
  type DispatchedMessage,
  type DispatchInfo,
  ImpulseDuringReplayError,
} from "../../src/index.js";

export interface Delivery {
  readonly kind: "initial" | "rpc";
  readonly methodId?: number;
  readonly sequence: number;
  readonly replaying: boolean;
}

export const Method = {
  /** Adds the u32 in args[0..4] to the counter. */
  Add: 1,
  /** An impulse from outside: adds 100, then forks Add(1) to itself. */
  Poke: 3,
  /** Tries to send an impulse from a handler (bug-for-test): records whether it was refused. */
  BadImpulse: 4,
  /** The impulse BadImpulse sends while primary. */
  Nested: 5,
} as const;

export function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n);
  return b;
}

/**
 * A counter. Its state is `{ count, nested }` as JSON. The InitialMessage forks `initialForks` Add(1) calls to
 * itself. Every delivery is recorded with its sequence and replay flag.
 */
export class CounterApp implements ClientApp {
  count = 0;
  nested = 0;
  impulseRefusals = 0;
  readonly deliveries: Delivery[] = [];
  client!: CoordinatorClient;
  loadedBytes = -1;

  constructor(private readonly initialForks = 10) {}

  onMessage(m: DispatchedMessage, info: DispatchInfo): void {
    if (m.type === MessageType.InitialMessage) {
      this.deliveries.push({ kind: "initial", sequence: info.sequence, replaying: info.replaying });
      for (let i = 0; i < this.initialForks; i++) this.client.sendRpc("", Method.Add, 1, u32(1));
      return;
    }
    this.deliveries.push({
      kind: "rpc",
      methodId: m.methodId,
      sequence: info.sequence,
      replaying: info.replaying,
    });
    switch (m.methodId) {
      case Method.Add:
        this.count += Buffer.from(m.args).readUInt32LE(0);
        return;
      case Method.Poke:
        this.count += 100;
        this.client.sendRpc("", Method.Add, 1, u32(1));
        return;
      case Method.BadImpulse:
        try {
          this.client.sendRpc("", Method.Nested, 2, u32(0));
        } catch (err) {
          if (!(err instanceof ImpulseDuringReplayError)) throw err;
          this.impulseRefusals++;
        }
        return;
      case Method.Nested:
        this.nested++;
        return;
      default:
        throw new Error(`unknown method ${m.methodId}`);
    }
  }

  saveState(): Uint8Array {
    return Buffer.from(JSON.stringify({ count: this.count, nested: this.nested }));
  }

  async loadState(chunks: AsyncIterable<Uint8Array>, length: bigint): Promise<void> {
    const parts: Buffer[] = [];
    for await (const c of chunks) parts.push(Buffer.from(c));
    const all = Buffer.concat(parts);
    if (BigInt(all.length) !== length) throw new Error(`loaded ${all.length} of ${length} bytes`);
    const s = JSON.parse(all.toString()) as { count: number; nested: number };
    this.count = s.count;
    this.nested = s.nested;
    this.loadedBytes = all.length;
  }
}
