import { DEFAULT_MAX_FRAME_SIZE, rpcSpan, scanRpcFrame, WireError } from "@immortal/wire";
import { BinReader, BinWriter, FormatError } from "./bin.js";
import { type ImpulseId, type InputWatermark, KIND_FORK, KIND_IMPULSE, type OutEntry } from "./state.js";

/**
 * The IC ↔ IC protocol (ours; AMBROSIA's peers speak CRA, which a binding never sees).
 * One TCP connection per (sender → receiver) direction, opened by the sender:
 *   sender → HELLO {magic, version, sender, receiver, sender registration id}
 *   receiver → WELCOME {its durable watermark for this sender, its registration id} | REFUSE {reason}
 *   sender → DATA {entries with explicit sequence numbers}…      receiver → ACK {durable watermark}…
 * Frames: `[u32 LE length of what follows][u8 type][payload]`. Sequence numbers are explicit so the receiver
 * can drop duplicates and detect gaps itself instead of trusting the sender's position.
 */
export const LINK_MAGIC = "IMMORTAL";
export const LINK_VERSION = 1;

export const LinkFrameType = { Hello: 1, Welcome: 2, Refuse: 3, Data: 4, Ack: 5 } as const;

export interface Hello {
  type: typeof LinkFrameType.Hello;
  version: number;
  sender: string;
  receiver: string;
  senderRegistrationId: string;
}
export interface Welcome {
  type: typeof LinkFrameType.Welcome;
  watermark: InputWatermark;
  receiverRegistrationId: string;
}
export interface Refuse {
  type: typeof LinkFrameType.Refuse;
  reason: string;
}
export interface Data {
  type: typeof LinkFrameType.Data;
  entries: OutEntry[];
}
export interface Ack {
  type: typeof LinkFrameType.Ack;
  watermark: InputWatermark;
}
export type LinkFrame = Hello | Welcome | Refuse | Data | Ack;

function framed(w: BinWriter): Buffer {
  const b = w.finish();
  b.writeUInt32LE(b.length - 4, 0);
  return b;
}

function start(type: number, size = 64): BinWriter {
  return new BinWriter(size).u32(0).u8(type);
}

function putWatermark(w: BinWriter, wm: InputWatermark): BinWriter {
  return w.num(wm.fork).num(wm.impulse.epoch).num(wm.impulse.n);
}

export function encodeHello(h: Omit<Hello, "type" | "version">): Buffer {
  const w = start(LinkFrameType.Hello).raw(Buffer.from(LINK_MAGIC, "ascii")).u32(LINK_VERSION);
  return framed(w.str(h.sender).str(h.receiver).str(h.senderRegistrationId));
}
export function encodeWelcome(watermark: InputWatermark, receiverRegistrationId: string): Buffer {
  return framed(putWatermark(start(LinkFrameType.Welcome), watermark).str(receiverRegistrationId));
}
export function encodeRefuse(reason: string): Buffer {
  return framed(start(LinkFrameType.Refuse).str(reason));
}
export function encodeAck(watermark: InputWatermark): Buffer {
  return framed(putWatermark(start(LinkFrameType.Ack), watermark));
}
export function encodeData(entries: readonly OutEntry[]): Buffer {
  let size = 16;
  for (const e of entries) size += 21 + e.frame.length;
  const w = start(LinkFrameType.Data, size).u32(entries.length);
  for (const e of entries) w.u8(e.kind).num(e.seq).num(e.epoch).bytes(e.frame);
  return framed(w);
}

/** RPCs at least this large go into a DATA frame by reference (their own iovec) instead of being copied. */
export const DATA_BY_REFERENCE_BYTES = 8192;

/**
 * The same bytes as {@link encodeData}, as a list of pieces to write in order (with `cork`/`uncork`, so the
 * socket sends them as one `writev`): small RPCs and the entry headers are packed into slabs, large RPCs are
 * their own pieces, so a 64 KiB payload is not copied once more on its way to the peer. The large pieces are
 * the entries' own `frame` buffers, which the outgoing stream keeps unchanged until they are acknowledged.
 */
export function encodeDataPieces(entries: readonly OutEntry[]): { pieces: Uint8Array[]; length: number } {
  let size = 9;
  for (const e of entries) size += 21 + (e.frame.length < DATA_BY_REFERENCE_BYTES ? e.frame.length : 0);
  const head = Buffer.allocUnsafe(size);
  const pieces: Uint8Array[] = [];
  let from = 0;
  let pos = 9;
  let length = 9;
  head[4] = LinkFrameType.Data;
  head.writeUInt32LE(entries.length, 5);
  for (const e of entries) {
    if (!Number.isSafeInteger(e.seq) || !Number.isSafeInteger(e.epoch)) {
      throw new FormatError(`entry ${e.seq}/${e.epoch} is not a safe integer`);
    }
    head[pos] = e.kind;
    head.writeDoubleLE(e.seq, pos + 1);
    head.writeDoubleLE(e.epoch, pos + 9);
    head.writeUInt32LE(e.frame.length, pos + 17);
    pos += 21;
    if (e.frame.length < DATA_BY_REFERENCE_BYTES) {
      head.set(e.frame, pos);
      pos += e.frame.length;
    } else {
      pieces.push(head.subarray(from, pos), e.frame);
      from = pos;
    }
    length += 21 + e.frame.length;
  }
  if (pos > from) pieces.push(head.subarray(from, pos));
  head.writeUInt32LE(length - 4, 0);
  return { pieces, length };
}

function readWatermark(r: BinReader): InputWatermark {
  const fork = r.num();
  const impulse: ImpulseId = { epoch: r.num(), n: r.num() };
  return { fork, impulse };
}

const entrySpan = rpcSpan();

/** Decodes one frame body (type byte onward). Every RPC frame inside DATA is validated with the wire codec. */
export function decodeLinkFrame(body: Uint8Array): LinkFrame {
  const r = new BinReader(body);
  const type = r.u8();
  let frame: LinkFrame;
  switch (type) {
    case LinkFrameType.Hello: {
      for (let i = 0; i < LINK_MAGIC.length; i++) {
        if (r.u8() !== LINK_MAGIC.charCodeAt(i))
          throw new FormatError("not an Immortal coordinator (bad magic)");
      }
      const version = r.u32();
      frame = { type, version, sender: r.str(), receiver: r.str(), senderRegistrationId: r.str() };
      break;
    }
    case LinkFrameType.Welcome:
      frame = { type, watermark: readWatermark(r), receiverRegistrationId: r.str() };
      break;
    case LinkFrameType.Refuse:
      frame = { type, reason: r.str() };
      break;
    case LinkFrameType.Ack:
      frame = { type, watermark: readWatermark(r) };
      break;
    case LinkFrameType.Data: {
      const count = r.u32();
      if (count > body.length) throw new FormatError(`DATA count ${count} exceeds its bytes`);
      const entries: OutEntry[] = [];
      for (let i = 0; i < count; i++) {
        const kind = r.u8();
        if (kind !== KIND_FORK && kind !== KIND_IMPULSE) throw new FormatError(`bad entry kind ${kind}`);
        const seq = r.num();
        const epoch = r.num();
        const rpc = r.bytes();
        // The receiver logs these bytes verbatim and its binding will parse them: refuse anything that is not
        // exactly one well-formed incoming-layout RPC, so garbage never reaches a log. Validated where it lies,
        // without decoding it into an object.
        try {
          scanRpcFrame(rpc, 0, rpc.length, "incoming", entrySpan);
        } catch (err) {
          if (err instanceof WireError)
            throw new FormatError(`DATA entry is not exactly one RPC: ${err.message}`);
          throw err;
        }
        if (seq < 1) throw new FormatError(`DATA entry sequence ${seq}`);
        entries.push({ kind, seq, epoch, frame: rpc });
      }
      frame = { type, entries };
      break;
    }
    default:
      throw new FormatError(`unknown link frame type ${type}`);
  }
  if (!r.done) throw new FormatError(`trailing bytes in link frame type ${type}`);
  return frame;
}

/**
 * Incremental reader for link frames over a socket. Chunks are gathered in a list and joined once per
 * complete frame, so a large frame arriving in many small chunks costs one copy, not one per chunk.
 */
export class LinkFrameReader {
  private chunks: Buffer[] = [];
  private buffered = 0;
  constructor(private readonly maxFrameSize = DEFAULT_MAX_FRAME_SIZE + 4096) {}

  get bufferedBytes(): number {
    return this.buffered;
  }

  /** Feeds a chunk; returns the complete frames it finished. Throws FormatError/WireError on bad input. */
  push(chunk: Buffer): LinkFrame[] {
    this.chunks.push(chunk);
    this.buffered += chunk.length;
    const out: LinkFrame[] = [];
    for (;;) {
      if (this.buffered < 4) break;
      const head = this.chunks[0]!.length >= 4 ? this.chunks[0]! : this.join();
      const len = head.readUInt32LE(0);
      if (len < 1 || len > this.maxFrameSize) throw new FormatError(`link frame of ${len} bytes refused`);
      if (this.buffered < 4 + len) break;
      const buf = this.chunks.length === 1 ? this.chunks[0]! : this.join();
      out.push(decodeLinkFrame(buf.subarray(4, 4 + len)));
      const rest = buf.subarray(4 + len);
      this.chunks = rest.length > 0 ? [rest] : [];
      this.buffered = rest.length;
    }
    return out;
  }

  private join(): Buffer {
    const all = Buffer.concat(this.chunks, this.buffered);
    this.chunks = [all];
    return all;
  }
}
