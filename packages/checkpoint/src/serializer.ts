import type { Codec, DecodeContext, EncodeContext } from "./codec.js";
import { asDecodeError } from "./codec.js";
import { CheckpointError, NotSerializableError } from "./errors.js";
import { DEFAULT_CHUNK_SIZE, encodeFramed, FramedDecoder, isStreamed } from "./framing.js";
import { jsonCodec } from "./json.js";
import { installExtensions, msgpackCodec } from "./msgpack.js";
import { makePlan } from "./plan.js";
import { type ClassRegistry, defaultRegistry } from "./registry.js";

/** Bytes arriving in chunks: a socket, a file stream, an array of buffers, a generator. */
export type ByteSource = Iterable<Uint8Array> | AsyncIterable<Uint8Array>;

export interface EncodeStreamOptions {
  /**
   * Target size of the chunks (and frames) produced, in bytes; default 64 KiB. Objects whose encoding is
   * estimated above it are split across frames rather than encoded in one piece.
   */
  readonly chunkSize?: number;
}

export interface DecodeStreamOptions {
  /** Largest single frame accepted (frames of values are buffered whole); default 1 GiB. */
  readonly maxFrameSize?: number;
  /** Total payload length when the caller knows it (the envelope does): lets corrupt sizes fail early. */
  readonly expectedLength?: number;
}

/**
 * One way of turning a state into bytes and back. Two layouts share one interface:
 *
 * - **whole** (`encode`/`decode`): one buffer. For "json-tagged" it is plain JSON text a human can read.
 * - **streamed** (`encodeStream`/`decodeStream`): a framed layout (see the README) whose encoder and
 *   decoder need memory for about one chunk beyond the state itself, however large the state is.
 *
 * `decode` and `decodeStream` accept either layout (the streamed one starts with byte 0xC1, which neither
 * JSON nor MessagePack can start with), so a reader never needs to know how a checkpoint was written.
 * Only the streamed layout gets the bounded-memory guarantee when decoding.
 */
export interface StateSerializer {
  /** Name of the payload format, e.g. "json-tagged", "msgpack". */
  readonly format: string;
  /** The envelope's one-byte id of this format (1 json-tagged, 2 msgpack; 128–255 for your own). */
  readonly formatId: number;
  /** Where class names are resolved. */
  readonly registry: ClassRegistry;
  /** Encodes `value` into one buffer. Throws `NotSerializableError` before doing any work it would waste. */
  encode(value: unknown): Uint8Array;
  /** Decodes either layout from one buffer. */
  decode(bytes: Uint8Array): unknown;
  /**
   * Validates `value` at once (throwing `NotSerializableError`), then returns a single-use iterable of
   * chunks in the streamed layout, produced as they are pulled. Chunks may be views of typed arrays in the
   * state: write them out before mutating the state, and do not mutate the state while iterating.
   */
  encodeStream(value: unknown, options?: EncodeStreamOptions): Iterable<Uint8Array>;
  /** Decodes either layout from chunks of any size (the whole layout is gathered into one buffer first). */
  decodeStream(source: ByteSource, options?: DecodeStreamOptions): Promise<unknown>;
}

export interface SerializerOptions {
  /** Registry used to name and restore classes; default: the one `registerClass` fills. */
  readonly registry?: ClassRegistry;
}

const DEFAULT_MAX_FRAME = 1 << 30;
const MIN_CHUNK_SIZE = 64;

/** Result views whose backing buffer is this much larger get copied, so a small result cannot pin a big buffer. */
function trim(bytes: Uint8Array): Uint8Array {
  const waste = bytes.buffer.byteLength - bytes.byteLength;
  return waste > 65536 && waste > bytes.byteLength / 4 ? bytes.slice() : bytes;
}

class CodecSerializer implements StateSerializer {
  readonly format: string;
  readonly formatId: number;
  readonly registry: ClassRegistry;
  readonly #codec: Codec;
  readonly #checkAwkward: boolean;
  readonly #prepare: () => void;

  constructor(format: string, formatId: number, codec: Codec, registry: ClassRegistry, msgpack: boolean) {
    this.format = format;
    this.formatId = formatId;
    this.registry = registry;
    this.#codec = codec;
    this.#checkAwkward = msgpack;
    this.#prepare = msgpack ? installExtensions : () => {};
  }

  #encodeContext(value: unknown, sizes: boolean): { ctx: EncodeContext; sizes: ReadonlyMap<object, number> } {
    this.#prepare();
    const plan = makePlan(value, { registry: this.registry, sizes, awkward: this.#checkAwkward });
    const ctx: EncodeContext = {
      registry: this.registry,
      shared: plan.shared,
      awkward: plan.awkward,
      sharedNative: plan.sharedNative,
      ids: new Map(),
      nextId: 0,
    };
    return { ctx, sizes: plan.sizes ?? new Map() };
  }

  #decodeContext(): DecodeContext {
    this.#prepare();
    return { registry: this.registry, objects: [] };
  }

  encode(value: unknown): Uint8Array {
    const { ctx } = this.#encodeContext(value, false);
    try {
      return trim(this.#codec.encodeValue(value, ctx));
    } catch (e) {
      throw tooLarge(e);
    }
  }

  decode(bytes: Uint8Array): unknown {
    if (!(bytes instanceof Uint8Array)) throw new TypeError("decode expects a Uint8Array");
    const ctx = this.#decodeContext();
    if (!isStreamed(bytes)) return this.#codec.decodeValue(bytes, ctx);
    const decoder = new FramedDecoder(this.#codec, ctx, {
      maxFrameSize: Number.POSITIVE_INFINITY,
      expectedLength: bytes.length,
    });
    try {
      decoder.push(bytes);
      return decoder.end();
    } catch (e) {
      throw asDecodeError(e);
    }
  }

  encodeStream(value: unknown, options?: EncodeStreamOptions): Iterable<Uint8Array> {
    const chunkSize = Math.max(MIN_CHUNK_SIZE, Math.floor(options?.chunkSize ?? DEFAULT_CHUNK_SIZE));
    const { ctx, sizes } = this.#encodeContext(value, true);
    return guardTooLarge(encodeFramed(value, this.#codec, ctx, sizes, chunkSize));
  }

  async decodeStream(source: ByteSource, options?: DecodeStreamOptions): Promise<unknown> {
    const ctx = this.#decodeContext();
    let decoder: FramedDecoder | undefined;
    let whole: Uint8Array[] | undefined;
    try {
      for await (const chunk of source) {
        if (!(chunk instanceof Uint8Array)) {
          throw new TypeError("decodeStream expects chunks of bytes (Uint8Array / Buffer), not strings");
        }
        if (chunk.length === 0) continue;
        if (decoder === undefined && whole === undefined) {
          // The first byte tells the layout.
          if (isStreamed(chunk)) {
            decoder = new FramedDecoder(this.#codec, ctx, {
              maxFrameSize: options?.maxFrameSize ?? DEFAULT_MAX_FRAME,
              expectedLength: options?.expectedLength,
            });
          } else {
            whole = [];
          }
        }
        if (decoder !== undefined) decoder.push(chunk);
        else whole!.push(chunk);
      }
      if (decoder !== undefined) return decoder.end();
    } catch (e) {
      throw asDecodeError(e);
    }
    return this.#codec.decodeValue(whole === undefined ? new Uint8Array(0) : Buffer.concat(whole), ctx);
  }
}

/** V8 refuses strings and buffers past its limits, and deep recursion, with a RangeError; say which. */
function tooLarge(e: unknown): unknown {
  if (e instanceof CheckpointError) return e;
  const stringTooLong = e instanceof Error && (e as { code?: unknown }).code === "ERR_STRING_TOO_LONG";
  if (!(e instanceof RangeError) && !stringTooLong) return e;
  if (/call stack/i.test((e as Error).message)) {
    // Only msgpackr recurses deeper than our own walkers (about 3 frames per nested class instance).
    return new NotSerializableError(
      "TOO_DEEP",
      "state",
      "deeply nested value",
      "msgpack handles about 400 levels of nested class instances; flatten the structure (e.g. a linked list into an array) or use json-tagged",
      { cause: e },
    );
  }
  return new NotSerializableError(
    "TOO_LARGE",
    "state",
    "state",
    "the whole-buffer encoding exceeds what V8 can hold in one string or buffer; use encodeStream",
    { cause: e },
  );
}

function* guardTooLarge(
  chunks: Generator<Uint8Array, void, undefined>,
): Generator<Uint8Array, void, undefined> {
  try {
    yield* chunks;
  } catch (e) {
    throw tooLarge(e);
  }
}

/** Tagged JSON (see the README for the tags). Human-readable; slower and larger than MessagePack. */
export function createJsonSerializer(options?: SerializerOptions): StateSerializer {
  return new CodecSerializer("json-tagged", 1, jsonCodec, options?.registry ?? defaultRegistry, false);
}

/** MessagePack via msgpackr, with extension types for everything JSON lacks. Fast and compact. */
export function createMsgpackSerializer(options?: SerializerOptions): StateSerializer {
  return new CodecSerializer("msgpack", 2, msgpackCodec, options?.registry ?? defaultRegistry, true);
}

/** Serializers over the default registry. */
export const jsonSerializer: StateSerializer = createJsonSerializer();
export const msgpackSerializer: StateSerializer = createMsgpackSerializer();

/** Lookup of the built-in formats by envelope id. */
export const DEFAULT_SERIALIZERS: readonly StateSerializer[] = [jsonSerializer, msgpackSerializer];
