import { CheckpointError, type NotSerializableCode, NotSerializableError } from "./errors.js";
import type { ClassRegistry } from "./registry.js";

/**
 * What an object is, as far as serialization cares. Classified by exact prototype, never by `instanceof`:
 * a subclass of Map is not a Map to us (its extra fields and behaviour would be lost), it is a class that
 * needs registering, and registration refuses it.
 */
export const Kind = {
  PLAIN: 0,
  ARRAY: 1,
  MAP: 2,
  SET: 3,
  DATE: 4,
  BINARY: 5,
  CLASS: 6,
  NULL_PROTO: 7,
  UNSUPPORTED: 8,
} as const;
export type Kind = (typeof Kind)[keyof typeof Kind];

/** A typed array, ArrayBuffer, DataView or Node Buffer type, and how to rebuild it from its bytes. */
export interface BinaryKind {
  /** Tag name in JSON, also the constructor's name. */
  readonly name: string;
  /** Stable code in the MessagePack extension table and in frame headers. Never reuse one. */
  readonly code: number;
  readonly prototype: object;
  readonly bytesPerElement: number;
  /** Wraps a fresh, exclusively owned buffer (already in host byte order). */
  readonly wrap: (buffer: ArrayBuffer) => object;
}

type TypedArrayCtor = new (buffer: ArrayBuffer) => ArrayBufferView;
const typed = (name: string, code: number, ctor: TypedArrayCtor & { BYTES_PER_ELEMENT: number }) => ({
  name,
  code,
  prototype: ctor.prototype as object,
  bytesPerElement: ctor.BYTES_PER_ELEMENT,
  wrap: (buffer: ArrayBuffer): object => new ctor(buffer),
});

// Codes 0x40..0x4e, skipping 0x42: msgpackr decodes extension 0x42 as its own big-integer type.
export const BINARY_KINDS: readonly BinaryKind[] = [
  typed("Uint8Array", 0x40, Uint8Array),
  typed("Int8Array", 0x41, Int8Array),
  typed("Uint8ClampedArray", 0x43, Uint8ClampedArray),
  typed("Int16Array", 0x44, Int16Array),
  typed("Uint16Array", 0x45, Uint16Array),
  typed("Int32Array", 0x46, Int32Array),
  typed("Uint32Array", 0x47, Uint32Array),
  typed("Float32Array", 0x48, Float32Array),
  typed("Float64Array", 0x49, Float64Array),
  typed("BigInt64Array", 0x4a, BigInt64Array),
  typed("BigUint64Array", 0x4b, BigUint64Array),
  { name: "ArrayBuffer", code: 0x4c, prototype: ArrayBuffer.prototype, bytesPerElement: 1, wrap: (b) => b },
  {
    name: "DataView",
    code: 0x4d,
    prototype: DataView.prototype,
    bytesPerElement: 1,
    wrap: (b) => new DataView(b),
  },
  {
    name: "Buffer",
    code: 0x4e,
    prototype: Buffer.prototype,
    bytesPerElement: 1,
    wrap: (b) => Buffer.from(b),
  },
];

const binaryByPrototype = new Map<object, BinaryKind>(BINARY_KINDS.map((k) => [k.prototype, k]));
const binaryByName = new Map<string, BinaryKind>(BINARY_KINDS.map((k) => [k.name, k]));
const binaryByCode = new Map<number, BinaryKind>(BINARY_KINDS.map((k) => [k.code, k]));

export const binaryKindOf = (o: object): BinaryKind | undefined =>
  binaryByPrototype.get(Object.getPrototypeOf(o) as object);
export const binaryKindByName = (name: string): BinaryKind | undefined => binaryByName.get(name);
export const binaryKindByCode = (code: number): BinaryKind | undefined => binaryByCode.get(code);

/** Classifies by exact prototype. `registry` decides which non-built-in prototypes are classes we know. */
export function kindOf(o: object, registry: ClassRegistry): Kind {
  const proto = Object.getPrototypeOf(o) as object | null;
  if (proto === Object.prototype) return Kind.PLAIN;
  if (proto === Array.prototype) return Array.isArray(o) ? Kind.ARRAY : Kind.UNSUPPORTED;
  if (proto === Map.prototype) return Kind.MAP;
  if (proto === Set.prototype) return Kind.SET;
  if (proto === Date.prototype) return Kind.DATE;
  if (proto === null) return Kind.NULL_PROTO;
  if (binaryByPrototype.has(proto)) return Kind.BINARY;
  if (registry.byPrototype(proto) !== undefined) return Kind.CLASS;
  return Kind.UNSUPPORTED;
}

/** The bytes an ArrayBuffer, DataView or typed array covers (a view, no copy). */
export function bytesOf(o: object): Uint8Array {
  // A Uint8Array (or Buffer) already is its bytes: no new view. Making one per value was 11 % of a binding's
  // time sending 64-byte payloads (PTI).
  if (o instanceof Uint8Array) return o;
  if (o instanceof ArrayBuffer) return new Uint8Array(o);
  const v = o as ArrayBufferView;
  return new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
}

/**
 * Payloads store typed-array elements little-endian (what every mainstream Node platform uses natively,
 * and what AMBROSIA's wire format uses). On a big-endian host the bytes are swapped on the way in and out.
 */
export const HOST_IS_LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** Bytes of `o` in little-endian element order: a view when the host is little-endian, else a swapped copy. */
export function littleEndianBytesOf(o: object, kind: BinaryKind): Uint8Array {
  const bytes = bytesOf(o);
  if (HOST_IS_LITTLE_ENDIAN || kind.bytesPerElement === 1) return bytes;
  const copy = bytes.slice();
  swapInPlace(copy, kind.bytesPerElement);
  return copy;
}

/** Rebuilds a value of `kind` from a fresh, exclusively owned little-endian buffer. */
export function fromLittleEndian(buffer: ArrayBuffer, kind: BinaryKind): object {
  if (!HOST_IS_LITTLE_ENDIAN && kind.bytesPerElement > 1)
    swapInPlace(new Uint8Array(buffer), kind.bytesPerElement);
  return kind.wrap(buffer);
}

export function swapInPlace(bytes: Uint8Array, width: number): void {
  for (let i = 0; i + width <= bytes.length; i += width) bytes.subarray(i, i + width).reverse();
}

/** `String.prototype.isWellFormed` is ES2024: in every Node >= 20, but not in our ES2023 lib typings. */
interface WellFormed {
  isWellFormed(): boolean;
}
/** False for strings holding a lone UTF-16 surrogate, which UTF-8 cannot represent. */
export const isWellFormed = (s: string): boolean => (s as unknown as WellFormed).isWellFormed();

/** Arrays and maps deeper than this are refused, so encoders and decoders never overflow the stack. */
export const MAX_DEPTH = 1000;

// ---- paths and descriptions for NotSerializableError -------------------------------------------------

/** One step from a container to a child, kept unformatted until an error actually needs the text. */
export type PathSegment =
  | { readonly kind: "prop"; readonly key: string }
  | { readonly kind: "index"; readonly index: number }
  | { readonly kind: "mapValue"; readonly key: unknown }
  | { readonly kind: "mapKey"; readonly index: number }
  | { readonly kind: "setElement"; readonly index: number };

const IDENTIFIER = /^[A-Za-z_$][\w$]*$/;

function formatKey(key: unknown): string {
  switch (typeof key) {
    case "string":
      return JSON.stringify(key);
    case "bigint":
      return `${key}n`;
    case "number":
    case "boolean":
    case "undefined":
      return String(key);
    default:
      return key === null ? "null" : `<${describe(key)}>`;
  }
}

export function formatPath(segments: readonly PathSegment[], root = "state"): string {
  let out = root;
  for (const s of segments) {
    switch (s.kind) {
      case "prop":
        out += IDENTIFIER.test(s.key) ? `.${s.key}` : `[${JSON.stringify(s.key)}]`;
        break;
      case "index":
        out += `[${s.index}]`;
        break;
      case "mapValue":
        out += `.get(${formatKey(s.key)})`;
        break;
      case "mapKey":
        out += `.keys()[${s.index}]`;
        break;
      case "setElement":
        out += `.values()[${s.index}]`;
        break;
    }
  }
  return out;
}

function className(o: object): string {
  const proto = Object.getPrototypeOf(o) as { constructor?: unknown } | null;
  const ctor = proto?.constructor;
  return typeof ctor === "function" && ctor.name ? ctor.name : "(anonymous)";
}

/** A short human description of a value, for error messages. */
export function describe(v: unknown): string {
  if (typeof v === "function") return v.name ? `function ${v.name}` : "function";
  if (typeof v === "symbol") return `symbol ${v.toString()}`;
  if (typeof v !== "object" || v === null) return typeof v;
  if (Array.isArray(v))
    return Object.getPrototypeOf(v) === Array.prototype ? "array" : `${className(v)} (Array subclass)`;
  return `instance of class ${className(v)}`;
}

const HINTS = new Map<object, string>([
  [Promise.prototype, "await it before checkpointing, or keep pending work out of the state"],
  [WeakMap.prototype, "weak collections cannot be enumerated; use a Map"],
  [WeakSet.prototype, "weak collections cannot be enumerated; use a Set"],
  [WeakRef.prototype, "weak references cannot be checkpointed; hold the object or an id"],
  [RegExp.prototype, "store its source and flags as strings"],
  [Error.prototype, "store the fields you need (message, code) as plain values"],
  [SharedArrayBuffer.prototype, "copy it into an ArrayBuffer or Uint8Array"],
  [Number.prototype, "unwrap the boxed primitive"],
  [String.prototype, "unwrap the boxed primitive"],
  [Boolean.prototype, "unwrap the boxed primitive"],
]);

/** The reason and fix for a value the encoders refuse. */
export function unsupportedHint(v: unknown, registry: ClassRegistry): string {
  if (typeof v === "function")
    return "functions cannot be checkpointed; keep behaviour in methods of a registered class";
  if (typeof v === "symbol") return "symbols cannot be checkpointed; use a string";
  if (typeof v !== "object" || v === null) return "";
  for (
    let p = Object.getPrototypeOf(v) as object | null;
    p !== null;
    p = Object.getPrototypeOf(p) as object | null
  ) {
    const hint = HINTS.get(p);
    if (hint !== undefined) return hint;
    if (p === Object.prototype) break;
  }
  const name = className(v);
  if (Array.isArray(v)) return `use a plain array, or hold the array in a property of a registered class`;
  const parent = Object.getPrototypeOf(Object.getPrototypeOf(v)) as object | null;
  const parentEntry = parent === null ? undefined : registry.byPrototype(parent);
  if (parentEntry !== undefined) {
    return `its base class ${parentEntry.name} is registered but subclasses need their own registration: register the class with registerClass(${name})`;
  }
  return `register the class with registerClass(${name})`;
}

/**
 * Raised inside recursive walks: carries the path segments collected while the error unwinds (innermost
 * first), so the happy path pays nothing for path tracking. Converted to `NotSerializableError` at the top.
 */
export class Unserializable {
  readonly segments: PathSegment[] = [];
  constructor(
    readonly code: NotSerializableCode,
    readonly valueKind: string,
    readonly hint: string,
    readonly cause?: unknown,
  ) {}

  toError(): NotSerializableError {
    const segs = this.segments.slice().reverse();
    // A too-deep path is thousands of segments long; the ends are what help.
    const path =
      segs.length > 64
        ? `${formatPath(segs.slice(0, 32))}…(${segs.length - 48} more)…${formatPath(segs.slice(-16), "")}`
        : formatPath(segs);
    return new NotSerializableError(
      this.code,
      path,
      this.valueKind,
      this.hint,
      this.cause === undefined ? undefined : { cause: this.cause },
    );
  }
}

/**
 * Adds `segment` to an error unwinding out of a child. Foreign errors are a getter or proxy that threw
 * (or the stack overflowing): they become `Unserializable` here, at the innermost frame that sees them.
 */
export function withSegment(e: unknown, segment: PathSegment): Unserializable {
  let u: Unserializable;
  if (e instanceof Unserializable) u = e;
  else if (e instanceof RangeError && /call stack/i.test(e.message))
    u = new Unserializable("TOO_DEEP", "deeply nested value", `nesting is limited to ${MAX_DEPTH} levels`, e);
  else if (e instanceof CheckpointError) throw e;
  else u = new Unserializable("GETTER_THREW", "property", "reading it threw", e);
  u.segments.push(segment);
  return u;
}

/** Tells a plain-object key that needs special handling in MessagePack (see the transform in msgpack.ts). */
export const isAwkwardKey = (k: string): boolean => k === "__proto__" || !isWellFormed(k);
