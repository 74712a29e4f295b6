import {
  type Codec,
  checkId,
  type DecodeContext,
  defineId,
  type EncodeContext,
  instantiate,
  PLAIN_UNSAFE_KEYS,
  setOwn,
} from "./codec.js";
import { CheckpointFormatError, NotSerializableError } from "./errors.js";
import {
  type BinaryKind,
  binaryKindByCode,
  binaryKindOf,
  HOST_IS_LITTLE_ENDIAN,
  Kind,
  kindOf,
  littleEndianBytesOf,
  MAX_DEPTH,
  swapInPlace,
} from "./kinds.js";

/*
 * The streamed layout, shared by every codec. The state is cut into frames so that neither side ever
 * holds more than about one frame of encoded bytes:
 *
 *   stream  := MAGIC frame*
 *   frame   := type:u8 length:u32le payload[length]
 *   ITEMS   payload = the codec's encoding of a list of values, appended to the open container
 *   OPEN    payload = the codec's encoding of [kind, id, ...]; opens a container, itself the next value
 *   CLOSE   empty payload; closes the innermost container
 *   BYTES   raw bytes appended to the open binary value (typed array, ArrayBuffer, …)
 *
 * Values go into the innermost open container in order: array elements and Set elements one by one, Map
 * entries and object properties as key, value, key, value, … The implicit outermost container takes
 * exactly one value: the state. The encoder opens (rather than inlines) any object whose estimated size is
 * above the chunk size, recursively, so a frame holds at most about one chunk of small values; large
 * binary values are sent as BYTES frames that are views of the state's own memory and decoded straight
 * into the new value. Object ids are global to the stream, so sharing and cycles work across frames.
 */

/** 0xC1 is "never used" in MessagePack and cannot start UTF-8 JSON text: it tells streamed from whole. */
export const STREAM_MAGIC: Uint8Array = Uint8Array.of(0xc1, 0x49, 0x53, 0x01);

const F_ITEMS = 1;
const F_OPEN = 2;
const F_CLOSE = 3;
const F_BYTES = 4;
const FRAME_HEADER = 5;
const MAX_FRAME = 0xffff_ffff;

const C_OBJECT = 1;
const C_NULL_PROTO = 2;
const C_ARRAY = 3;
const C_MAP = 4;
const C_SET = 5;
const C_CLASS = 6;
const C_BYTES = 7;

export const DEFAULT_CHUNK_SIZE = 64 * 1024;
/** Pieces smaller than this are gathered into one chunk rather than yielded on their own. */
const SMALL = 2048;
const STAGING = 16 * 1024;

export function isStreamed(bytes: Uint8Array): boolean {
  return bytes.length > 0 && bytes[0] === STREAM_MAGIC[0];
}

function writeFrameHeader(into: Uint8Array, at: number, type: number, length: number): void {
  if (length > MAX_FRAME) {
    throw new NotSerializableError(
      "TOO_LARGE",
      "state",
      "frame",
      `a single frame is limited to ${MAX_FRAME} bytes`,
    );
  }
  into[at] = type;
  into[at + 1] = length & 0xff;
  into[at + 2] = (length >>> 8) & 0xff;
  into[at + 3] = (length >>> 16) & 0xff;
  into[at + 4] = (length >>> 24) & 0xff;
}

function estimate(v: unknown, sizes: ReadonlyMap<object, number>): number {
  switch (typeof v) {
    case "string":
      return v.length + 3;
    case "object":
      return v === null ? 1 : (sizes.get(v) ?? 8);
    default:
      return 9;
  }
}

export function encodeFramed(
  value: unknown,
  codec: Codec,
  ctx: EncodeContext,
  sizes: ReadonlyMap<object, number>,
  chunkSize: number,
): Generator<Uint8Array, void, undefined> {
  return new FrameEncoder(codec, ctx, sizes, chunkSize).run(value);
}

class FrameEncoder {
  readonly #codec: Codec;
  readonly #ctx: EncodeContext;
  readonly #sizes: ReadonlyMap<object, number>;
  readonly #chunkSize: number;
  #batch: unknown[] = [];
  #batchSize = 0;
  #staging: Uint8Array | null = null;
  #stagingLength = 0;

  constructor(codec: Codec, ctx: EncodeContext, sizes: ReadonlyMap<object, number>, chunkSize: number) {
    this.#codec = codec;
    this.#ctx = ctx;
    this.#sizes = sizes;
    this.#chunkSize = chunkSize;
  }

  *run(value: unknown): Generator<Uint8Array, void, undefined> {
    yield* this.#emit(STREAM_MAGIC);
    if (this.#add(value)) yield* this.#container(value as object);
    yield* this.#flushBatch();
    yield* this.#flushStaging();
  }

  /**
   * Queues `v` into the current batch and returns false, or returns true (queuing nothing) when `v` is an
   * object to open as a container of its own. A plain method, not a generator: this runs once per value,
   * and the callers only enter a generator when there is something to yield.
   */
  #add(v: unknown): boolean {
    const size = estimate(v, this.#sizes);
    if (size > this.#chunkSize && typeof v === "object" && v !== null && !this.#ctx.ids.has(v)) return true;
    this.#batch.push(v);
    this.#batchSize += size;
    return false;
  }

  /** After `#add(v)`: opens `v` or flushes a full batch, as needed. */
  *#after(opened: boolean, v: unknown): Generator<Uint8Array, void, undefined> {
    if (opened) {
      yield* this.#flushBatch();
      yield* this.#container(v as object);
    } else {
      yield* this.#flushBatch();
    }
  }

  *#container(o: object): Generator<Uint8Array, void, undefined> {
    const ctx = this.#ctx;
    const id = defineId(ctx, o);
    const limit = this.#chunkSize;
    switch (kindOf(o, ctx.registry)) {
      case Kind.PLAIN:
        yield* this.#open([C_OBJECT, id]);
        yield* this.#props(o);
        break;
      case Kind.NULL_PROTO:
        yield* this.#open([C_NULL_PROTO, id]);
        yield* this.#props(o);
        break;
      case Kind.CLASS:
        yield* this.#open([C_CLASS, id, ctx.registry.byPrototype(Object.getPrototypeOf(o) as object)!.name]);
        yield* this.#props(o);
        break;
      case Kind.ARRAY: {
        yield* this.#open([C_ARRAY, id]);
        const a = o as unknown[];
        for (let i = 0; i < a.length; i++) {
          const v = a[i];
          const opened = this.#add(v);
          if (opened || this.#batchSize >= limit) yield* this.#after(opened, v);
        }
        break;
      }
      case Kind.MAP:
        yield* this.#open([C_MAP, id]);
        for (const [k, v] of o as Map<unknown, unknown>) {
          const openedKey = this.#add(k);
          if (openedKey || this.#batchSize >= limit) yield* this.#after(openedKey, k);
          const opened = this.#add(v);
          if (opened || this.#batchSize >= limit) yield* this.#after(opened, v);
        }
        break;
      case Kind.SET:
        yield* this.#open([C_SET, id]);
        for (const v of o as Set<unknown>) {
          const opened = this.#add(v);
          if (opened || this.#batchSize >= limit) yield* this.#after(opened, v);
        }
        break;
      case Kind.BINARY: {
        const kind = binaryKindOf(o)!;
        const bytes = littleEndianBytesOf(o, kind);
        yield* this.#open([C_BYTES, id, kind.code, bytes.byteLength]);
        const piece = limit * 16;
        for (let at = 0; at < bytes.byteLength; at += piece) {
          const view = bytes.subarray(at, Math.min(bytes.byteLength, at + piece));
          const header = new Uint8Array(FRAME_HEADER);
          writeFrameHeader(header, 0, F_BYTES, view.byteLength);
          yield* this.#emit(header);
          yield* this.#emit(view);
        }
        break;
      }
      default:
        // Dates are never large, and the plan refused everything else.
        throw new NotSerializableError("UNSUPPORTED_VALUE", "state", "object", "cannot stream this object");
    }
    yield* this.#flushBatch();
    const close = new Uint8Array(FRAME_HEADER);
    writeFrameHeader(close, 0, F_CLOSE, 0);
    yield* this.#emit(close);
  }

  *#props(o: object): Generator<Uint8Array, void, undefined> {
    const rec = o as Record<string, unknown>;
    const limit = this.#chunkSize;
    for (const k of Object.keys(o)) {
      this.#add(k); // a string: never opened
      const v = rec[k];
      const opened = this.#add(v);
      if (opened || this.#batchSize >= limit) yield* this.#after(opened, v);
    }
  }

  *#open(header: unknown[]): Generator<Uint8Array, void, undefined> {
    const bytes = this.#codec.encodeItems(header, this.#ctx, FRAME_HEADER);
    writeFrameHeader(bytes, 0, F_OPEN, bytes.length - FRAME_HEADER);
    yield* this.#emit(bytes);
  }

  *#flushBatch(): Generator<Uint8Array, void, undefined> {
    if (this.#batch.length === 0) return;
    const bytes = this.#codec.encodeItems(this.#batch, this.#ctx, FRAME_HEADER);
    writeFrameHeader(bytes, 0, F_ITEMS, bytes.length - FRAME_HEADER);
    this.#batch = [];
    this.#batchSize = 0;
    yield* this.#emit(bytes);
  }

  *#emit(bytes: Uint8Array): Generator<Uint8Array, void, undefined> {
    if (bytes.length >= SMALL) {
      yield* this.#flushStaging();
      yield bytes;
      return;
    }
    if (this.#staging !== null && this.#stagingLength + bytes.length > this.#staging.length) {
      yield* this.#flushStaging();
    }
    if (this.#staging === null) this.#staging = new Uint8Array(STAGING);
    this.#staging.set(bytes, this.#stagingLength);
    this.#stagingLength += bytes.length;
  }

  *#flushStaging(): Generator<Uint8Array, void, undefined> {
    if (this.#staging === null || this.#stagingLength === 0) return;
    // An exact-size copy: the consumer may keep it, and the staging buffer is reused for the next pieces
    // (handing out views would cost a fresh staging buffer per flush, often for a few dozen bytes).
    const out = this.#staging.slice(0, this.#stagingLength);
    this.#stagingLength = 0;
    yield out;
  }
}

// ---- decoding ---------------------------------------------------------------------------------------

export interface FramedDecoderOptions {
  /** Largest ITEMS/OPEN frame accepted (they are buffered whole). */
  readonly maxFrameSize: number;
  /** Total stream length when known: binary values may not announce more bytes than the input holds. */
  readonly expectedLength?: number | undefined;
}

const ROOT = 0;

interface Open {
  readonly kind: number;
  readonly value: unknown;
  /** For objects: keys that need defineProperty. */
  readonly unsafe?: ReadonlySet<string> | undefined;
  /** Key waiting for its value (Maps and objects). */
  key: unknown;
  hasKey: boolean;
  /** For binary values: the bytes being filled, and how far. */
  readonly bytes?: Uint8Array;
  readonly binary?: BinaryKind;
  filled: number;
}

function badFrame(message: string): CheckpointFormatError {
  return new CheckpointFormatError("BAD_FRAME", message);
}

/** Push-based decoder of the streamed layout: holds at most one ITEMS/OPEN frame, never BYTES payloads. */
export class FramedDecoder {
  readonly #codec: Codec;
  readonly #ctx: DecodeContext;
  readonly #options: FramedDecoderOptions;
  readonly #stack: Open[] = [{ kind: ROOT, value: undefined, key: undefined, hasKey: false, filled: 0 }];
  #position = 0;
  #magic = 0;
  readonly #header = new Uint8Array(FRAME_HEADER);
  #headerLength = 0;
  #frameType = 0;
  #payload: Uint8Array | null = null;
  #payloadFilled = 0;
  /** Bytes of the current BYTES frame still to come. */
  #bytesLeft = 0;
  #done = false;

  constructor(codec: Codec, ctx: DecodeContext, options: FramedDecoderOptions) {
    this.#codec = codec;
    this.#ctx = ctx;
    this.#options = options;
  }

  /** Bytes consumed so far. */
  get position(): number {
    return this.#position;
  }

  push(chunk: Uint8Array): void {
    const n = chunk.length;
    let i = 0;
    while (i < n) {
      if (this.#done) {
        throw new CheckpointFormatError(
          "TRAILING_BYTES",
          `bytes after the end of the value at offset ${this.#position + i}`,
        );
      }
      if (this.#magic < STREAM_MAGIC.length) {
        if (chunk[i] !== STREAM_MAGIC[this.#magic]) {
          throw badFrame(
            this.#magic === 3
              ? `unsupported stream version ${chunk[i]}`
              : "not a streamed checkpoint payload",
          );
        }
        this.#magic++;
        i++;
        continue;
      }
      if (this.#bytesLeft > 0) {
        const top = this.#stack[this.#stack.length - 1]!;
        const take = Math.min(n - i, this.#bytesLeft);
        top.bytes!.set(chunk.subarray(i, i + take), top.filled);
        top.filled += take;
        this.#bytesLeft -= take;
        i += take;
        continue;
      }
      if (this.#payload !== null) {
        const payload = this.#payload;
        const take = Math.min(n - i, payload.length - this.#payloadFilled);
        payload.set(chunk.subarray(i, i + take), this.#payloadFilled);
        this.#payloadFilled += take;
        i += take;
        if (this.#payloadFilled === payload.length) {
          this.#payload = null;
          this.#frame(this.#frameType, payload, this.#position + i);
        }
        continue;
      }
      // A frame header, possibly split across chunks.
      let type: number;
      let length: number;
      if (this.#headerLength === 0 && n - i >= FRAME_HEADER) {
        type = chunk[i]!;
        length = (chunk[i + 1]! | (chunk[i + 2]! << 8) | (chunk[i + 3]! << 16)) + chunk[i + 4]! * 0x1000000;
        i += FRAME_HEADER;
      } else {
        this.#header[this.#headerLength++] = chunk[i++]!;
        if (this.#headerLength < FRAME_HEADER) continue;
        const h = this.#header;
        type = h[0]!;
        length = (h[1]! | (h[2]! << 8) | (h[3]! << 16)) + h[4]! * 0x1000000;
        this.#headerLength = 0;
      }
      const at = this.#position + i;
      if (type === F_CLOSE) {
        if (length !== 0) throw badFrame(`CLOSE frame with ${length} payload bytes at offset ${at}`);
        this.#close(at);
      } else if (type === F_BYTES) {
        const top = this.#stack[this.#stack.length - 1]!;
        if (top.kind !== C_BYTES) throw badFrame(`BYTES frame outside a binary value at offset ${at}`);
        if (length === 0 || length > top.bytes!.length - top.filled) {
          throw badFrame(`BYTES frame of ${length} bytes overruns its value at offset ${at}`);
        }
        this.#bytesLeft = length;
      } else if (type === F_ITEMS || type === F_OPEN) {
        if (length === 0) throw badFrame(`empty frame at offset ${at}`);
        if (length > this.#options.maxFrameSize) {
          throw new CheckpointFormatError(
            "TOO_LARGE",
            `frame of ${length} bytes exceeds maxFrameSize ${this.#options.maxFrameSize} at offset ${at}`,
          );
        }
        if (n - i >= length) {
          // Whole frame inside this chunk: decode it in place.
          i += length;
          this.#frame(type, chunk.subarray(i - length, i), this.#position + i);
        } else {
          this.#frameType = type;
          this.#payload = new Uint8Array(length);
          this.#payloadFilled = 0;
        }
      } else {
        throw badFrame(`unknown frame type ${type} at offset ${at - FRAME_HEADER}`);
      }
    }
    this.#position += n;
  }

  /** The decoded value; throws TRUNCATED if the input stopped early. */
  end(): unknown {
    if (!this.#done) {
      throw new CheckpointFormatError(
        "TRUNCATED",
        `streamed payload ended after ${this.#position} bytes, inside ${this.#magic < STREAM_MAGIC.length ? "the stream header" : "the value"}`,
      );
    }
    return this.#stack[0]!.value;
  }

  #frame(type: number, payload: Uint8Array, end: number): void {
    const items = this.#codec.decodeItems(payload, this.#ctx);
    if (type === F_ITEMS) {
      for (const item of items) this.#accept(item);
    } else {
      this.#open(items, end);
    }
    this.#checkDone();
  }

  #open(header: unknown[], end: number): void {
    const [kind, rawId] = header;
    const id = rawId === -1 ? -1 : checkId(rawId);
    let open: Open;
    switch (kind) {
      case C_OBJECT:
        open = { kind, value: {}, unsafe: PLAIN_UNSAFE_KEYS, key: undefined, hasKey: false, filled: 0 };
        break;
      case C_NULL_PROTO:
        open = { kind, value: Object.create(null), key: undefined, hasKey: false, filled: 0 };
        break;
      case C_CLASS: {
        const { object, unsafe } = instantiate(this.#ctx.registry, header[2]);
        open = { kind, value: object, unsafe, key: undefined, hasKey: false, filled: 0 };
        break;
      }
      case C_ARRAY:
        open = { kind, value: [], key: undefined, hasKey: false, filled: 0 };
        break;
      case C_MAP:
        open = { kind, value: new Map(), key: undefined, hasKey: false, filled: 0 };
        break;
      case C_SET:
        open = { kind, value: new Set(), key: undefined, hasKey: false, filled: 0 };
        break;
      case C_BYTES: {
        const binary = typeof header[2] === "number" ? binaryKindByCode(header[2]) : undefined;
        const length = header[3];
        if (binary === undefined) throw badFrame(`unknown binary type ${String(header[2])}`);
        if (typeof length !== "number" || !Number.isSafeInteger(length) || length < 0) {
          throw badFrame(`invalid ${binary.name} length ${String(length)}`);
        }
        if (length % binary.bytesPerElement !== 0) {
          throw badFrame(`${binary.name} length ${length} is not a multiple of ${binary.bytesPerElement}`);
        }
        const expected = this.#options.expectedLength;
        if (expected !== undefined && length > expected - end) {
          throw new CheckpointFormatError(
            "TRUNCATED",
            `${binary.name} of ${length} bytes exceeds the rest of the input`,
          );
        }
        const buffer = new ArrayBuffer(length);
        // On little-endian hosts (all mainstream ones) the value wraps the buffer being filled; big-endian
        // hosts swap the elements once complete, in `#close`.
        open = {
          kind,
          value: binary.wrap(buffer),
          key: undefined,
          hasKey: false,
          bytes: new Uint8Array(buffer),
          binary,
          filled: 0,
        };
        break;
      }
      default:
        throw badFrame(`unknown container kind ${String(kind)}`);
    }
    if (this.#stack.length > MAX_DEPTH) throw badFrame(`containers nested deeper than ${MAX_DEPTH}`);
    if (id >= 0) {
      if (this.#ctx.objects[id] !== undefined) throw badFrame(`object ${id} defined twice`);
      this.#ctx.objects[id] = open.value;
    }
    this.#accept(open.value);
    this.#stack.push(open);
  }

  #close(at: number): void {
    if (this.#stack.length < 2) throw badFrame(`CLOSE without an open container at offset ${at}`);
    const top = this.#stack.pop()!;
    if (top.hasKey) throw badFrame(`container closed between a key and its value at offset ${at}`);
    if (top.kind === C_BYTES) {
      if (top.filled !== top.bytes!.length) {
        throw badFrame(`${top.binary!.name} closed after ${top.filled} of ${top.bytes!.length} bytes`);
      }
      if (!HOST_IS_LITTLE_ENDIAN && top.binary!.bytesPerElement > 1)
        swapInPlace(top.bytes!, top.binary!.bytesPerElement);
    }
    this.#checkDone();
  }

  #accept(item: unknown): void {
    const top = this.#stack[this.#stack.length - 1]!;
    switch (top.kind) {
      case ROOT:
        if (top.hasKey) throw badFrame("more than one value at the top level");
        top.hasKey = true; // "has its value"
        (top as { value: unknown }).value = item;
        return;
      case C_ARRAY:
        (top.value as unknown[]).push(item);
        return;
      case C_SET:
        (top.value as Set<unknown>).add(item);
        return;
      case C_MAP:
        if (!top.hasKey) {
          top.key = item;
          top.hasKey = true;
        } else {
          (top.value as Map<unknown, unknown>).set(top.key, item);
          top.key = undefined;
          top.hasKey = false;
        }
        return;
      case C_OBJECT:
      case C_NULL_PROTO:
      case C_CLASS:
        if (!top.hasKey) {
          if (typeof item !== "string") throw badFrame("property name is not a string");
          top.key = item;
          top.hasKey = true;
        } else {
          setOwn(top.value as Record<string, unknown>, top.key as string, item, top.unsafe);
          top.key = undefined;
          top.hasKey = false;
        }
        return;
      default:
        throw badFrame("values inside a binary value");
    }
  }

  #checkDone(): void {
    if (this.#stack.length === 1 && this.#stack[0]!.hasKey) this.#done = true;
  }
}
