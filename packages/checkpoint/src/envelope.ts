import { CheckpointFormatError } from "./errors.js";
import {
  type ByteSource,
  DEFAULT_SERIALIZERS,
  type EncodeStreamOptions,
  msgpackSerializer,
  type StateSerializer,
} from "./serializer.js";

/*
 * Envelope: a fixed 24-byte little-endian header in front of a serializer's payload.
 *
 *   offset size
 *        0    4  magic "IMCK"
 *        4    1  envelope version (1)
 *        5    1  format id (1 json-tagged, 2 msgpack, 128–255 for custom serializers)
 *        6    2  flags, 0 (a reader of version 1 refuses other values: they would mean something it lacks)
 *        8    4  app version: u32 chosen by the application, the input of migrations
 *       12    4  reserved, 0 (same rule as flags)
 *       16    8  payload length: u64, or 2^64-1 for "unknown: the payload runs to the end of the input"
 */

export const ENVELOPE_MAGIC: Uint8Array = Uint8Array.of(0x49, 0x4d, 0x43, 0x4b); // "IMCK"
export const ENVELOPE_VERSION = 1;
export const ENVELOPE_HEADER_SIZE = 24;
/** Payload length meaning "unknown": the payload is the rest of the input. */
export const UNKNOWN_LENGTH = 0xffff_ffff_ffff_ffffn;

export interface EnvelopeHeader {
  readonly envelopeVersion: number;
  readonly formatId: number;
  readonly appVersion: number;
  /** `undefined` when written as unknown (`UNKNOWN_LENGTH`). */
  readonly payloadLength: bigint | undefined;
}

/** What a checkpoint decodes to. */
export interface DecodedCheckpoint {
  readonly format: string;
  readonly formatId: number;
  /** The app version the state was written with (after `migrate`: the version it was migrated to). */
  readonly appVersion: number;
  readonly value: unknown;
}

export interface WriteEnvelopeOptions {
  /** Default: `msgpackSerializer`. */
  readonly serializer?: StateSerializer;
  /** Your state's schema version, an integer in [0, 2^32). */
  readonly appVersion: number;
}

export interface WriteEnvelopeStreamOptions extends WriteEnvelopeOptions, EncodeStreamOptions {
  /**
   * "measure" (default): encode once to count the payload bytes, then again while streaming, so the header
   * holds the exact length (AMBROSIA announces a checkpoint's length before its bytes). Costs a second
   * encoding pass, not memory. "unknown": write `UNKNOWN_LENGTH` and encode once, for files and transports
   * that delimit the checkpoint themselves.
   */
  readonly length?: "measure" | "unknown";
}

export interface ReadEnvelopeOptions {
  /** Serializers to choose from by format id; default: json-tagged and msgpack over the default registry. */
  readonly serializers?: readonly StateSerializer[];
}

/** A streamed checkpoint: header and payload chunks, and (when measured) the total length up front. */
export interface EnvelopeStream extends Iterable<Uint8Array> {
  /** Header plus payload bytes, or `undefined` for `length: "unknown"`. */
  readonly byteLength: bigint | undefined;
}

function checkU32(n: number, what: string): void {
  if (!Number.isInteger(n) || n < 0 || n > 0xffff_ffff) {
    throw new CheckpointFormatError("BAD_HEADER_FIELD", `${what} must be an integer in [0, 2^32), got ${n}`);
  }
}

export function encodeEnvelopeHeader(header: Omit<EnvelopeHeader, "envelopeVersion">): Uint8Array {
  checkU32(header.appVersion, "appVersion");
  if (!Number.isInteger(header.formatId) || header.formatId < 1 || header.formatId > 255) {
    throw new CheckpointFormatError(
      "BAD_HEADER_FIELD",
      `formatId must be an integer in [1, 255], got ${header.formatId}`,
    );
  }
  const length = header.payloadLength ?? UNKNOWN_LENGTH;
  if (length < 0n || length > UNKNOWN_LENGTH) {
    throw new CheckpointFormatError("BAD_HEADER_FIELD", `payload length ${length} does not fit 64 bits`);
  }
  const out = new Uint8Array(ENVELOPE_HEADER_SIZE);
  const view = new DataView(out.buffer);
  out.set(ENVELOPE_MAGIC, 0);
  out[4] = ENVELOPE_VERSION;
  out[5] = header.formatId;
  view.setUint32(8, header.appVersion, true);
  view.setBigUint64(16, length, true);
  return out;
}

/** Parses and checks the first 24 bytes. */
export function decodeEnvelopeHeader(bytes: Uint8Array): EnvelopeHeader {
  if (bytes.length < ENVELOPE_HEADER_SIZE) {
    // Say "not a checkpoint" rather than "truncated" when even the magic is wrong.
    for (let i = 0; i < Math.min(bytes.length, ENVELOPE_MAGIC.length); i++) {
      if (bytes[i] !== ENVELOPE_MAGIC[i])
        throw new CheckpointFormatError("BAD_MAGIC", "not an Immortal checkpoint");
    }
    throw new CheckpointFormatError(
      "TRUNCATED",
      `checkpoint header needs ${ENVELOPE_HEADER_SIZE} bytes, got ${bytes.length}`,
    );
  }
  for (let i = 0; i < ENVELOPE_MAGIC.length; i++) {
    if (bytes[i] !== ENVELOPE_MAGIC[i])
      throw new CheckpointFormatError("BAD_MAGIC", "not an Immortal checkpoint");
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, ENVELOPE_HEADER_SIZE);
  const envelopeVersion = bytes[4]!;
  if (envelopeVersion !== ENVELOPE_VERSION) {
    throw new CheckpointFormatError(
      "UNSUPPORTED_ENVELOPE_VERSION",
      `envelope version ${envelopeVersion}; this reader understands version ${ENVELOPE_VERSION} (written by a newer release?)`,
    );
  }
  const flags = view.getUint16(6, true);
  const reserved = view.getUint32(12, true);
  if (flags !== 0 || reserved !== 0) {
    throw new CheckpointFormatError(
      "UNSUPPORTED_FLAGS",
      `header flags 0x${flags.toString(16)}, reserved 0x${reserved.toString(16)}`,
    );
  }
  const length = view.getBigUint64(16, true);
  return {
    envelopeVersion,
    formatId: bytes[5]!,
    appVersion: view.getUint32(8, true),
    payloadLength: length === UNKNOWN_LENGTH ? undefined : length,
  };
}

function serializerFor(formatId: number, options: ReadEnvelopeOptions | undefined): StateSerializer {
  const list = options?.serializers ?? DEFAULT_SERIALIZERS;
  const s = list.find((x) => x.formatId === formatId);
  if (s === undefined) {
    throw new CheckpointFormatError(
      "UNKNOWN_FORMAT",
      `no serializer for format id ${formatId} (have: ${list.map((x) => `${x.formatId} ${x.format}`).join(", ") || "none"})`,
    );
  }
  return s;
}

/** Header + whole payload in one buffer. */
export function writeEnvelope(value: unknown, options: WriteEnvelopeOptions): Uint8Array {
  const serializer = options.serializer ?? msgpackSerializer;
  // Check the header fields before spending an encode on a value we could not write.
  encodeEnvelopeHeader({ formatId: serializer.formatId, appVersion: options.appVersion, payloadLength: 0n });
  const payload = serializer.encode(value);
  const header = encodeEnvelopeHeader({
    formatId: serializer.formatId,
    appVersion: options.appVersion,
    payloadLength: BigInt(payload.length),
  });
  const out = new Uint8Array(ENVELOPE_HEADER_SIZE + payload.length);
  out.set(header, 0);
  out.set(payload, ENVELOPE_HEADER_SIZE);
  return out;
}

/** Decodes a checkpoint held in one buffer (payload in either layout). */
export function readEnvelope(bytes: Uint8Array, options?: ReadEnvelopeOptions): DecodedCheckpoint {
  const header = decodeEnvelopeHeader(bytes);
  const serializer = serializerFor(header.formatId, options);
  let end = bytes.length;
  if (header.payloadLength !== undefined) {
    const have = BigInt(bytes.length - ENVELOPE_HEADER_SIZE);
    if (have < header.payloadLength) {
      throw new CheckpointFormatError(
        "TRUNCATED",
        `payload announces ${header.payloadLength} bytes, ${have} present`,
      );
    }
    if (have > header.payloadLength) {
      throw new CheckpointFormatError(
        "TRAILING_BYTES",
        `${have - header.payloadLength} bytes after the payload`,
      );
    }
    end = ENVELOPE_HEADER_SIZE + Number(header.payloadLength);
  }
  const value = serializer.decode(bytes.subarray(ENVELOPE_HEADER_SIZE, end));
  return { format: serializer.format, formatId: serializer.formatId, appVersion: header.appVersion, value };
}

/**
 * Header + streamed payload, as chunks. With `length: "measure"` (default) the value is validated and
 * measured now, so `byteLength` is known before the first chunk is sent.
 */
export function writeEnvelopeStream(value: unknown, options: WriteEnvelopeStreamOptions): EnvelopeStream {
  const serializer = options.serializer ?? msgpackSerializer;
  encodeEnvelopeHeader({ formatId: serializer.formatId, appVersion: options.appVersion, payloadLength: 0n });
  const streamOptions: EncodeStreamOptions =
    options.chunkSize === undefined ? {} : { chunkSize: options.chunkSize };
  let measured: bigint | undefined;
  let first: Iterable<Uint8Array> | undefined;
  if ((options.length ?? "measure") === "measure") {
    let n = 0;
    for (const c of serializer.encodeStream(value, streamOptions)) n += c.length;
    measured = BigInt(n);
  } else {
    // Validate now (encodeStream throws NotSerializableError eagerly) rather than on the first pull.
    first = serializer.encodeStream(value, streamOptions);
  }
  const header = encodeEnvelopeHeader({
    formatId: serializer.formatId,
    appVersion: options.appVersion,
    payloadLength: measured,
  });
  let used = false;
  return {
    byteLength: measured === undefined ? undefined : measured + BigInt(ENVELOPE_HEADER_SIZE),
    *[Symbol.iterator]() {
      if (used) throw new TypeError("an EnvelopeStream can be iterated only once");
      used = true;
      yield header;
      let n = 0;
      for (const c of first ?? serializer.encodeStream(value, streamOptions)) {
        n += c.length;
        yield c;
      }
      if (measured !== undefined && BigInt(n) !== measured) {
        throw new CheckpointFormatError(
          "LENGTH_MISMATCH",
          `payload measured ${measured} bytes but ${n} were produced: was the state mutated during the checkpoint?`,
        );
      }
    },
  };
}

type PullIterator = Iterator<Uint8Array> | AsyncIterator<Uint8Array>;

function iteratorOf(source: ByteSource): PullIterator {
  if (Symbol.asyncIterator in source) return (source as AsyncIterable<Uint8Array>)[Symbol.asyncIterator]();
  return (source as Iterable<Uint8Array>)[Symbol.iterator]();
}

/** Decodes a checkpoint arriving in chunks; memory stays bounded for streamed payloads. */
export async function readEnvelopeStream(
  source: ByteSource,
  options?: ReadEnvelopeOptions,
): Promise<DecodedCheckpoint> {
  const it = iteratorOf(source);
  let finished = false;
  /** Bytes read from the source but not consumed yet. */
  let rest: Uint8Array = new Uint8Array(0);
  const pull = async (): Promise<Uint8Array | undefined> => {
    if (rest.length > 0) {
      const r = rest;
      rest = new Uint8Array(0);
      return r;
    }
    while (!finished) {
      const r = await it.next();
      if (r.done === true) {
        finished = true;
        break;
      }
      if (!(r.value instanceof Uint8Array))
        throw new TypeError("checkpoint sources must yield Uint8Array chunks");
      if (r.value.length > 0) return r.value;
    }
    return undefined;
  };
  try {
    const head = new Uint8Array(ENVELOPE_HEADER_SIZE);
    let filled = 0;
    while (filled < ENVELOPE_HEADER_SIZE) {
      const c = await pull();
      if (c === undefined) {
        decodeEnvelopeHeader(head.subarray(0, filled)); // throws BAD_MAGIC or TRUNCATED
        throw new CheckpointFormatError("TRUNCATED", "input ended inside the checkpoint header");
      }
      const take = Math.min(c.length, ENVELOPE_HEADER_SIZE - filled);
      head.set(c.subarray(0, take), filled);
      filled += take;
      if (take < c.length) rest = c.subarray(take);
    }
    // Checked before any payload is read: a bad magic or a newer version fails at once.
    const header = decodeEnvelopeHeader(head);
    const serializer = serializerFor(header.formatId, options);
    const limit = header.payloadLength;
    if (limit !== undefined && limit > BigInt(Number.MAX_SAFE_INTEGER)) {
      throw new CheckpointFormatError("TOO_LARGE", `payload length ${limit} is beyond 2^53`);
    }
    let remaining = limit === undefined ? Number.POSITIVE_INFINITY : Number(limit);
    let truncated = false;
    async function* payload(): AsyncGenerator<Uint8Array> {
      while (remaining > 0) {
        const c = await pull();
        if (c === undefined) {
          truncated = limit !== undefined;
          return;
        }
        if (c.length > remaining) {
          rest = c.subarray(remaining);
          const last = c.subarray(0, remaining);
          remaining = 0;
          yield last;
        } else {
          remaining -= c.length;
          yield c;
        }
      }
    }
    let value: unknown;
    try {
      value = await serializer.decodeStream(
        payload(),
        limit === undefined ? {} : { expectedLength: Number(limit) },
      );
    } catch (e) {
      // A decoder that ran out of input mid-value: say it is the checkpoint that is short.
      if (truncated)
        throw new CheckpointFormatError("TRUNCATED", `input ended ${remaining} bytes short of the payload`, {
          cause: e,
        });
      throw e;
    }
    if (truncated)
      throw new CheckpointFormatError("TRUNCATED", `input ended ${remaining} bytes short of the payload`);
    if (remaining > 0 && remaining !== Number.POSITIVE_INFINITY) {
      throw new CheckpointFormatError(
        "TRAILING_BYTES",
        `the value ended ${remaining} bytes before the payload did`,
      );
    }
    if ((await pull()) !== undefined)
      throw new CheckpointFormatError("TRAILING_BYTES", "bytes after the payload");
    return { format: serializer.format, formatId: serializer.formatId, appVersion: header.appVersion, value };
  } catch (e) {
    // Release the source (a socket or file stream is destroyed) rather than leave it half read.
    if (!finished) await it.return?.();
    throw e;
  }
}
