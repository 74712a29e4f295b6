import { createHash } from "node:crypto";
import net from "node:net";
import { CHECKPOINT_SEQUENCE, CONTROL_SEQUENCE, encodeRecord, MessageType } from "@immortal/wire";
import { FatalError } from "../cli/errors.js";
import { FileInstanceStorage } from "../storage/index.js";
import { bindingEvents } from "./lb-stream.js";
import { listenExclusive } from "./listen.js";
import { decodeIcState } from "./state.js";

/**
 * A read-only replay of one instance version's log for a what-if upgrade test (AMBROSIA's
 * `DebugInstance --testingUpgrade`), or for a plain replay of the same range to compare against:
 *
 *   checkpoint K (record −2) → [UpgradeService] → every logged record from log K on → TakeCheckpoint
 *
 * The closing TakeCheckpoint is how the end of the replay is known: a binding answers it only after every
 * earlier handler has completed (AMBROSIA's rule), so once its checkpoint has arrived, every output of the
 * replayed range has been produced. The replay never becomes primary, connects to no other coordinator, logs
 * nothing (everything the binding sends is read and dropped; the binding's own observer captures it), and opens
 * every file read-only: the live folder is not changed, not even a torn tail is repaired.
 */
export interface WhatIfReplayOptions {
  /** The version folder `<log>/<instance>_<version>`. */
  readonly dir: string;
  /** Checkpoint to start from (default: the oldest one present, for the longest replay). */
  readonly checkpoint?: number;
  /** Send UpgradeService after the checkpoint, so the binding replays on its upgraded code. */
  readonly testingUpgrade: boolean;
  /** Ports to listen on (0, the default, picks free ones). */
  readonly receivePort?: number;
  readonly sendPort?: number;
}

export interface WhatIfReplayResult {
  readonly checkpoint: number;
  /** Sequence IDs of the first and last replayed records (first > last when the range was empty). */
  readonly firstSequence: number;
  readonly lastSequence: number;
  readonly replayedRecords: number;
  /** RPCs the binding sent while replaying (dropped). */
  readonly rpcsFromBinding: number;
  /** The binding's final checkpoint: its length and SHA-256 (its state after the replayed range). */
  readonly finalStateBytes: number;
  readonly finalStateSha256: string;
}

export interface WhatIfReplay {
  readonly receivePort: number;
  readonly sendPort: number;
  /** Resolves once the binding has answered the closing TakeCheckpoint. */
  readonly done: Promise<WhatIfReplayResult>;
  close(): Promise<void>;
}

function accept(server: net.Server): Promise<net.Socket> {
  return new Promise((resolve) =>
    server.once("connection", (s: net.Socket) => {
      s.setNoDelay(true);
      s.on("error", () => {});
      resolve(s);
    }),
  );
}

async function write(sock: net.Socket, bytes: Uint8Array): Promise<void> {
  if (sock.destroyed) throw new Error("the binding disconnected during the replay");
  if (sock.write(bytes)) return;
  await new Promise<void>((resolve, reject) => {
    const done = () => {
      sock.off("drain", done);
      sock.off("close", done);
      if (sock.destroyed) reject(new Error("the binding disconnected during the replay"));
      else resolve();
    };
    sock.on("drain", done);
    sock.on("close", done);
  });
}

/** Starts listening; the replay runs once a binding has connected to both ports. */
export async function startWhatIfReplay(o: WhatIfReplayOptions): Promise<WhatIfReplay> {
  const storage = new FileInstanceStorage(o.dir);
  const checkpoints = await storage.listCheckpoints();
  if (checkpoints.length === 0) throw new FatalError(`${o.dir} holds no checkpoint to replay from`);
  const k = o.checkpoint ?? checkpoints[0]!;
  if (!checkpoints.includes(k)) {
    throw new FatalError(
      `checkpoint ${k} is not in ${o.dir} (it has ${checkpoints.join(", ")}; older ones were deleted by retention)`,
    );
  }
  const receive = net.createServer();
  const send = net.createServer();
  const sockets: net.Socket[] = [];
  const close = async () => {
    for (const s of sockets) s.destroy();
    await Promise.all([receive, send].map((srv) => new Promise<void>((r) => srv.close(() => r()))));
  };
  let receivePort: number;
  let sendPort: number;
  try {
    receivePort = await listenExclusive(receive, o.receivePort ?? 0, "127.0.0.1");
    sendPort = await listenExclusive(send, o.sendPort ?? 0, "127.0.0.1");
  } catch (err) {
    await close();
    throw new FatalError(`cannot listen for the replay's binding: ${(err as Error).message}`);
  }
  const run = async (): Promise<WhatIfReplayResult> => {
    const fromBinding = await accept(receive);
    sockets.push(fromBinding);
    const toBinding = await accept(send);
    sockets.push(toBinding);
    let rpcs = 0;
    let finalBytes = 0;
    const hash = createHash("sha256");
    // Read the binding throughout (it blocks on a full socket otherwise); its checkpoint ends the replay.
    const reading = (async () => {
      let inCheckpoint = false;
      for await (const ev of bindingEvents(fromBinding)) {
        if (ev.type === MessageType.RPC) rpcs++;
        else if (ev.type === MessageType.RPCBatch) rpcs += ev.messages.length;
        else if (ev.type === MessageType.Checkpoint) inCheckpoint = true;
        else if (ev.type === "checkpointChunk") {
          finalBytes += ev.bytes.length;
          hash.update(ev.bytes);
        } else if (ev.type === "checkpointEnd" && inCheckpoint) return;
      }
      throw new Error("the binding disconnected before answering the replay's closing TakeCheckpoint");
    })();
    reading.catch(() => undefined);

    const reader = await storage.openCheckpoint(k);
    let state: ReturnType<typeof decodeIcState>;
    try {
      await reader.verify();
      state = decodeIcState(reader.icState);
      await write(
        toBinding,
        encodeRecord({
          committerId: state.committerId,
          sequence: CHECKPOINT_SEQUENCE,
          messages: [{ type: MessageType.Checkpoint, length: BigInt(reader.appStateLength) }],
        }),
      );
      for await (const chunk of reader.appState()) await write(toBinding, chunk);
    } finally {
      await reader.close();
    }
    const control = (type: typeof MessageType.UpgradeService | typeof MessageType.TakeCheckpoint) =>
      write(
        toBinding,
        encodeRecord({ committerId: state.committerId, sequence: CONTROL_SEQUENCE, messages: [{ type }] }),
      );
    if (o.testingUpgrade) await control(MessageType.UpgradeService);
    const logs = (await storage.listLogs()).filter((n) => n >= k);
    let next = state.nextSequence;
    let records = 0;
    for (const n of logs) {
      const scan = storage.streamLog(n, {
        committerId: state.committerId,
        expectedFirstSequence: next,
        isLastLog: n === logs[logs.length - 1],
        repair: false,
      });
      for await (const unit of scan) {
        await write(toBinding, unit.dataRecord);
        records++;
        next = unit.sequence + 1;
      }
    }
    await control(MessageType.TakeCheckpoint);
    await reading;
    return {
      checkpoint: k,
      firstSequence: state.nextSequence,
      lastSequence: next - 1,
      replayedRecords: records,
      rpcsFromBinding: rpcs,
      finalStateBytes: finalBytes,
      finalStateSha256: hash.digest("hex"),
    };
  };
  const done = run();
  done.catch(() => undefined);
  return { receivePort, sendPort, done, close };
}
