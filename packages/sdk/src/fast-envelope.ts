/**
 * A binary fast path for the SDK's message envelopes.
 *
 * Every RPC an Immortal sends carries an envelope (`{ t, a: [...args], m }`, a result `{ t, c, m, ok, v }`).
 * Through the general state serializer each one pays for a plan walk (shared references, awkward values),
 * msgpackr's extension hooks and a record definition that the receiver parses again: with 64 B PTI payloads
 * that was most of both bindings' CPU time. Envelopes are small and made of simple values, so they get a
 * layout written and read directly:
 *
 *   0xC1 0xE1          marker: 0xC1 is the one byte MessagePack never uses, and the checkpoint package's
 *                      streamed layout continues 0xC1 0x49; so no envelope an earlier SDK logged starts so,
 *                      and old logs keep decoding through the general serializer
 *   record             the top-level value
 *
 *   record  = 0x0B, u8 count, count × (u8 key length, key bytes (UTF-8), value)
 *   value   = 0x00 undefined | 0x01 null | 0x02 false | 0x03 true
 *           | 0x04 i32 | 0x05 f64                               (little-endian; -0, NaN, ±∞ as f64)
 *           | 0x06 u32 length, UTF-8 bytes                       (well-formed strings only)
 *           | 0x07 u32 length, bytes → Uint8Array | 0x08 … → Buffer (copies, each owning its ArrayBuffer)
 *           | 0x0A u32 count, values                             (an array: depth 2 at most)
 *           | record                                             (depth 2 at most)
 *
 * A value outside this (a Map, a Date, a class instance, a bigint, a lone surrogate, deeper nesting, more than
 * 64 values, the same byte array twice, a `__proto__` key) makes the whole value take the general path, so
 * what decodes is always what the general serializer would have given back: plain objects with their own
 * enumerable string keys in order, holes as `undefined`, typed arrays without expando properties.
 */

const MARKER0 = 0xc1;
const MARKER1 = 0xe1;

const T_UNDEFINED = 0x00;
const T_NULL = 0x01;
const T_FALSE = 0x02;
const T_TRUE = 0x03;
const T_I32 = 0x04;
const T_F64 = 0x05;
const T_STRING = 0x06;
const T_U8 = 0x07;
const T_BUFFER = 0x08;
const T_ARRAY = 0x0a;
const T_RECORD = 0x0b;

/** Most values (all nodes) one fast envelope holds; past it the general path is cheaper than a long walk. */
const MAX_NODES = 64;
const MAX_DEPTH = 2;
const MAX_KEY_BYTES = 255;

/** Thrown by `decodeFast` on bytes that carry the marker but are not a well-formed fast envelope. */
export class FastEnvelopeError extends Error {
  override readonly name = "FastEnvelopeError";
}

/** Whether `bytes` is a fast envelope (else: the general serializer's layout). */
export function isFast(bytes: Uint8Array): boolean {
  return bytes.length >= 2 && bytes[0] === MARKER0 && bytes[1] === MARKER1;
}

/** `String.prototype.isWellFormed` (Node 20 has it; TypeScript's ES2023 library does not declare it). */
const wellFormed = (s: string): boolean => (s as unknown as { isWellFormed(): boolean }).isWellFormed();

const U8_PROTO = Uint8Array.prototype;
const BUFFER_PROTO = Buffer.prototype;
const OBJECT_PROTO = Object.prototype;
const ARRAY_PROTO = Array.prototype;

/** Short strings are nearly always ASCII; handled byte by byte they skip Buffer's (costly) generic paths. */
const SHORT = 48;

/** `s.length` when `s` is short and ASCII (its UTF-8 bytes are its char codes), else -1. */
function asciiLength(s: string): number {
  const n = s.length;
  if (n > SHORT) return -1;
  for (let i = 0; i < n; i++) if (s.charCodeAt(i) > 0x7f) return -1;
  return n;
}

/** Writes `s` as UTF-8 at `at`; returns the byte count. */
function writeUtf8(out: Uint8Array, s: string, at: number): number {
  const n = s.length;
  if (n <= SHORT) {
    let ascii = true;
    for (let i = 0; i < n; i++) {
      const c = s.charCodeAt(i);
      if (c > 0x7f) {
        ascii = false;
        break;
      }
      out[at + i] = c;
    }
    if (ascii) return n;
  }
  return encoder.encodeInto(s, out.subarray(at)).written;
}

const encoder = new TextEncoder();

/** Reads `n` bytes of UTF-8 at `at`. */
function readUtf8(buf: Buffer, at: number, n: number): string {
  if (n <= SHORT) {
    let s = "";
    for (let i = 0; i < n; i++) {
      const c = buf[at + i]!;
      if (c > 0x7f) return buf.toString("utf8", at, at + n);
      s += String.fromCharCode(c);
    }
    return s;
  }
  return buf.toString("utf8", at, at + n);
}

// Scratch for reading and writing doubles without a DataView per message.
const f64 = new Float64Array(1);
const f64Bytes = new Uint8Array(f64.buffer);

/** Per-encode bookkeeping of the measuring pass (one module-level instance: encoding is synchronous). */
let nodes = 0;
// Byte arrays met so far: a counter, not `length = 0`, which is a slow runtime call on every encode.
const binaries: Uint8Array[] = [];
let binCount = 0;

/** Encoded size of `v` at `depth`, or -1 when the fast layout cannot hold it. */
function measure(v: unknown, depth: number): number {
  if (++nodes > MAX_NODES) return -1;
  switch (typeof v) {
    case "undefined":
    case "boolean":
      return 1;
    case "number":
      return (v | 0) === v && !Object.is(v, -0) ? 5 : 9;
    case "string": {
      const n = asciiLength(v);
      if (n >= 0) return 5 + n;
      return wellFormed(v) ? 5 + Buffer.byteLength(v, "utf8") : -1;
    }
    case "object": {
      if (v === null) return 1;
      const proto: unknown = Object.getPrototypeOf(v);
      if (proto === U8_PROTO || proto === BUFFER_PROTO) {
        const b = v as Uint8Array;
        // The general serializer keeps a byte array met twice as one object; here it would become two.
        for (let i = 0; i < binCount; i++) if (binaries[i] === b) return -1;
        binaries[binCount++] = b;
        return 5 + b.byteLength;
      }
      if (depth >= MAX_DEPTH) return -1;
      if (proto === ARRAY_PROTO) {
        const a = v as unknown[];
        let size = 5;
        for (let i = 0; i < a.length; i++) {
          const s = measure(a[i], depth + 1);
          if (s < 0) return -1;
          size += s;
        }
        return size;
      }
      if (proto === OBJECT_PROTO) return measureRecord(v as Record<string, unknown>, depth);
      return -1;
    }
    default:
      return -1;
  }
}

function measureRecord(r: Record<string, unknown>, depth: number): number {
  const keys = Object.keys(r);
  if (keys.length > 255) return -1;
  let size = 2;
  for (const k of keys) {
    if (k === "__proto__" || !wellFormed(k)) return -1;
    const ka = asciiLength(k);
    const kb = ka >= 0 ? ka : Buffer.byteLength(k, "utf8");
    if (kb > MAX_KEY_BYTES) return -1;
    const s = measure(r[k], depth + 1);
    if (s < 0) return -1;
    size += 1 + kb + s;
  }
  return size;
}

/** Writes `v` (already measured) at `at`; returns the offset after it. */
function write(out: Uint8Array, at: number, v: unknown): number {
  switch (typeof v) {
    case "undefined":
      out[at] = T_UNDEFINED;
      return at + 1;
    case "boolean":
      out[at] = v ? T_TRUE : T_FALSE;
      return at + 1;
    case "number":
      if ((v | 0) === v && !Object.is(v, -0)) {
        out[at] = T_I32;
        out[at + 1] = v;
        out[at + 2] = v >>> 8;
        out[at + 3] = v >>> 16;
        out[at + 4] = v >>> 24;
        return at + 5;
      }
      out[at] = T_F64;
      f64[0] = v;
      out.set(f64Bytes, at + 1);
      return at + 9;
    case "string": {
      out[at] = T_STRING;
      const n = writeUtf8(out, v, at + 5);
      writeU32(out, at + 1, n);
      return at + 5 + n;
    }
    default: {
      if (v === null) {
        out[at] = T_NULL;
        return at + 1;
      }
      const proto: unknown = Object.getPrototypeOf(v);
      if (proto === U8_PROTO || proto === BUFFER_PROTO) {
        const b = v as Uint8Array;
        out[at] = proto === BUFFER_PROTO ? T_BUFFER : T_U8;
        writeU32(out, at + 1, b.byteLength);
        if (b.byteLength <= 16) for (let i = 0; i < b.byteLength; i++) out[at + 5 + i] = b[i]!;
        else out.set(b, at + 5);
        return at + 5 + b.byteLength;
      }
      if (proto === ARRAY_PROTO) {
        const a = v as unknown[];
        out[at] = T_ARRAY;
        writeU32(out, at + 1, a.length);
        let p = at + 5;
        for (let i = 0; i < a.length; i++) p = write(out, p, a[i]);
        return p;
      }
      return writeRecord(out, at, v as Record<string, unknown>);
    }
  }
}

function writeU32(out: Uint8Array, at: number, v: number): void {
  out[at] = v;
  out[at + 1] = v >>> 8;
  out[at + 2] = v >>> 16;
  out[at + 3] = v >>> 24;
}

function writeRecord(out: Uint8Array, at: number, r: Record<string, unknown>): number {
  const keys = Object.keys(r);
  out[at] = T_RECORD;
  out[at + 1] = keys.length;
  let p = at + 2;
  for (const k of keys) {
    const n = writeUtf8(out, k, p + 1);
    out[p] = n;
    p = write(out, p + 1 + n, r[k]);
  }
  return p;
}

// Encodings are carved out of shared slabs, as Buffer's pool does: a typed array of more than 64 bytes
// gets its own off-heap backing store, which cost more than the whole encoding.
const SLAB = 256 * 1024;
let slab = new Uint8Array(SLAB);
let slabAt = 0;

function alloc(n: number): Uint8Array {
  if (n > SLAB / 16) return new Uint8Array(n);
  if (slabAt + n > SLAB) {
    slab = new Uint8Array(SLAB);
    slabAt = 0;
  }
  const v = slab.subarray(slabAt, slabAt + n);
  slabAt += (n + 7) & ~7;
  return v;
}

/**
 * The fast encoding of `value`, or `undefined` when it needs the general serializer (see the layout above).
 * Only plain-object values are taken: envelopes are records.
 */
export function encodeFast(value: unknown): Uint8Array | undefined {
  if (typeof value !== "object" || value === null || Object.getPrototypeOf(value) !== OBJECT_PROTO) {
    return undefined;
  }
  nodes = 0;
  binCount = 0;
  const size = measureRecord(value as Record<string, unknown>, 0);
  for (let i = 0; i < binCount; i++) binaries[i] = EMPTY; // hold no reference to the caller's bytes
  if (size < 0) return undefined;
  const out = alloc(2 + size);
  out[0] = MARKER0;
  out[1] = MARKER1;
  const end = writeRecord(out, 2, value as Record<string, unknown>);
  if (end !== out.length) {
    // A getter that answered differently on the second read: refuse rather than log inconsistent bytes.
    return undefined;
  }
  return out;
}

// The reader's position and input: module-level, as decoding is synchronous and not re-entrant.
let buf: Buffer = Buffer.alloc(0);
let pos = 0;

function need(n: number): void {
  if (pos + n > buf.length) {
    throw new FastEnvelopeError(`fast envelope truncated at byte ${pos} (needs ${n} more of ${buf.length})`);
  }
}

function u32(): number {
  need(4);
  const v = (buf[pos]! | (buf[pos + 1]! << 8) | (buf[pos + 2]! << 16)) + buf[pos + 3]! * 0x1000000;
  pos += 4;
  return v;
}

function utf8(n: number): string {
  need(n);
  const s = readUtf8(buf, pos, n);
  pos += n;
  return s;
}

function bytesCopy(n: number, asBuffer: boolean): Uint8Array {
  need(n);
  // Like the general serializer's: each owns its whole ArrayBuffer (a Buffer is not a view into a pool).
  const copy = asBuffer ? Buffer.allocUnsafeSlow(n) : new Uint8Array(n);
  if (n <= 16) for (let i = 0; i < n; i++) copy[i] = buf[pos + i]!;
  else copy.set(buf.subarray(pos, pos + n));
  pos += n;
  return copy;
}

function value(): unknown {
  need(1);
  const tag = buf[pos++]!;
  switch (tag) {
    case T_UNDEFINED:
      return undefined;
    case T_NULL:
      return null;
    case T_FALSE:
      return false;
    case T_TRUE:
      return true;
    case T_I32: {
      need(4);
      const v = buf[pos]! | (buf[pos + 1]! << 8) | (buf[pos + 2]! << 16) | (buf[pos + 3]! << 24);
      pos += 4;
      return v;
    }
    case T_F64: {
      need(8);
      for (let i = 0; i < 8; i++) f64Bytes[i] = buf[pos + i]!;
      pos += 8;
      return f64[0];
    }
    case T_STRING:
      return utf8(u32());
    case T_U8:
      return bytesCopy(u32(), false);
    case T_BUFFER:
      return bytesCopy(u32(), true);
    case T_ARRAY: {
      const n = u32();
      if (n > buf.length - pos) throw new FastEnvelopeError(`fast envelope array of ${n} values is too long`);
      const a: unknown[] = new Array(n);
      for (let i = 0; i < n; i++) a[i] = value();
      return a;
    }
    case T_RECORD:
      return record();
    default:
      throw new FastEnvelopeError(
        `fast envelope has unknown value tag 0x${tag.toString(16)} at byte ${pos - 1}`,
      );
  }
}

function record(): Record<string, unknown> {
  need(1);
  const n = buf[pos++]!;
  const r: Record<string, unknown> = {};
  for (let i = 0; i < n; i++) {
    need(1);
    const k = utf8(buf[pos++]!);
    if (k === "__proto__") throw new FastEnvelopeError("fast envelope has a __proto__ key");
    r[k] = value();
  }
  return r;
}

/** Decodes a fast envelope (`isFast(bytes)` must hold); throws `FastEnvelopeError` on malformed bytes. */
export function decodeFast(bytes: Uint8Array): unknown {
  buf = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  pos = 2;
  try {
    const v = value();
    if (pos !== buf.length) {
      throw new FastEnvelopeError(`fast envelope has ${buf.length - pos} bytes after its value`);
    }
    return v;
  } finally {
    buf = EMPTY; // hold no reference to the message
  }
}

const EMPTY = Buffer.alloc(0);
