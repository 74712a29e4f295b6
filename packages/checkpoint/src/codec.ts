import { CheckpointError, DeserializationError } from "./errors.js";
import type { ClassRegistry } from "./registry.js";

/**
 * State shared by everything that encodes one value: the whole-value encoding, or every frame of a
 * streamed one. Object ids are global to the value, so a frame may refer to an object defined in an
 * earlier frame.
 */
export interface EncodeContext {
  readonly registry: ClassRegistry;
  /** Objects reached more than once (from the plan). */
  readonly shared: ReadonlySet<object>;
  /** From the plan: values MessagePack cannot write natively (see plan.ts). */
  readonly awkward: boolean;
  /** From the plan: a shared object is a plain object, array or Map. */
  readonly sharedNative: boolean;
  /** Shared objects already written, with their ids. */
  readonly ids: Map<object, number>;
  nextId: number;
}

/** Decoding counterpart of `EncodeContext`. */
export interface DecodeContext {
  readonly registry: ClassRegistry;
  /** Objects by id, as they are defined. */
  readonly objects: unknown[];
}

/**
 * One payload format (tagged JSON, MessagePack). A codec encodes a whole value, or a list of "items" (the
 * unit of a streamed frame); the framing itself is format-independent (framing.ts).
 */
export interface Codec {
  /** Encodes `value` whole. */
  encodeValue(value: unknown, ctx: EncodeContext): Uint8Array;
  decodeValue(bytes: Uint8Array, ctx: DecodeContext): unknown;
  /** Encodes `items` as one list, leaving `reserve` bytes free at the start for a frame header. */
  encodeItems(items: readonly unknown[], ctx: EncodeContext, reserve: number): Uint8Array;
  decodeItems(bytes: Uint8Array, ctx: DecodeContext): unknown[];
}

/** Id of the next shared object, or -1 if `o` is not shared. Records it as written. */
export function defineId(ctx: EncodeContext, o: object): number {
  if (!ctx.shared.has(o)) return -1;
  const id = ctx.nextId++;
  ctx.ids.set(o, id);
  return id;
}

/** Largest object id a decoder accepts; ids are dense from 0, so this is far beyond any real state. */
export const MAX_OBJECT_ID = 0xffff_ffff;

export function checkId(id: unknown): number {
  if (typeof id !== "number" || !Number.isInteger(id) || id < 0 || id > MAX_OBJECT_ID) {
    throw new DeserializationError("BAD_REFERENCE", `invalid object id ${String(id)}`);
  }
  return id;
}

/** Anything but our own errors, thrown while decoding untrusted bytes, means the bytes are malformed. */
export function asDecodeError(e: unknown): CheckpointError {
  if (e instanceof CheckpointError) return e;
  const message = e instanceof Error ? e.message : String(e);
  if (e instanceof RangeError && /call stack/i.test(message)) {
    return new DeserializationError("MALFORMED", "value nested too deeply to decode", { cause: e });
  }
  return new DeserializationError("MALFORMED", message, { cause: e });
}

/**
 * Sets a property the way a decoder must: as an own data property, whatever the prototype chain holds.
 * Plain assignment is several times faster, so it is used unless `unsafe` (see
 * `ClassRegistry.unsafeKeys`) says the chain would intercept it.
 */
export function setOwn(
  target: Record<string, unknown>,
  key: string,
  value: unknown,
  unsafe: ReadonlySet<string> | undefined,
): void {
  if (unsafe?.has(key)) {
    Object.defineProperty(target, key, { value, writable: true, enumerable: true, configurable: true });
  } else {
    target[key] = value;
  }
}

/** Keys that assignment does not create as own properties on a plain object. */
export const PLAIN_UNSAFE_KEYS: ReadonlySet<string> = new Set(["__proto__"]);

/** Creates an empty object for a registered class name, or throws `UNKNOWN_CLASS`. */
export function instantiate(
  registry: ClassRegistry,
  name: unknown,
): { readonly object: Record<string, unknown>; readonly unsafe: ReadonlySet<string> } {
  if (typeof name !== "string") throw new DeserializationError("BAD_VALUE", "class name is not a string");
  const entry = registry.byName(name);
  if (entry === undefined) {
    throw new DeserializationError(
      "UNKNOWN_CLASS",
      `class "${name}" is not registered in this process; call registerClass before decoding`,
    );
  }
  return {
    object: Object.create(entry.prototype) as Record<string, unknown>,
    unsafe: registry.unsafeKeys(entry.prototype),
  };
}
