import { addExtension, clearSource, Packr, RESERVE_START_SPACE, Unpackr } from "msgpackr";
import {
  asDecodeError,
  type Codec,
  checkId,
  type DecodeContext,
  defineId,
  type EncodeContext,
  instantiate,
  PLAIN_UNSAFE_KEYS,
  setOwn,
} from "./codec.js";
import { DeserializationError, NotSerializableError } from "./errors.js";
import {
  BINARY_KINDS,
  type BinaryKind,
  binaryKindOf,
  describe,
  fromLittleEndian,
  isAwkwardKey,
  isWellFormed,
  Kind,
  kindOf,
  littleEndianBytesOf,
  unsupportedHint,
} from "./kinds.js";

/*
 * MessagePack through msgpackr, with our types as msgpackr extensions.
 *
 * Two msgpackr facts shape this file:
 *
 * 1. Extensions are process-global and matched with `instanceof`. Each of ours is keyed on a class whose
 *    `Symbol.hasInstance` answers true only while *we* are encoding (`active`), so other msgpackr users in
 *    the process never see them, and so one catch-all can refuse every object no other extension took:
 *    without it msgpackr silently writes an unregistered class instance as a plain object.
 *
 * 2. msgpackr writes plain objects, arrays, Maps, strings and numbers itself, with no hook, and it loses
 *    -0 (written as integer 0), lone surrogates (replaced by U+FFFD), "__proto__" keys (renamed), and
 *    object identity (we do not use its structuredClone: it turns cycles through extension types into
 *    plain objects). When the plan found any of these, `Transform` first makes a copy-on-write version of
 *    the state in which they are replaced by marker objects our extensions understand; only the containers
 *    on the path to such a value are copied. Otherwise the state is packed as is (the fast path).
 */

/** Extension type codes (msgpackr reserves 0x42 and 0x62 in this range for its own types). */
const T = {
  CLASS: 0x30,
  SET: 0x31,
  DATE: 0x32,
  NULL_PROTO: 0x33,
  NEG_ZERO: 0x34,
  STRING16: 0x35,
  ENTRIES: 0x36,
  DEF: 0x37,
  REF: 0x38,
} as const;
const REJECT = -1;
/** The body (own properties) of the class instance whose CLASS extension is being written. */
const BODY = -3;
/** Arrays and Maps msgpackr did not recognize (an own "constructor" property hides their class from it). */
const COPY = -2;

/** Stands in for a value msgpackr cannot hold (see `Transform`). */
class Marker {
  constructor(
    readonly type: number,
    readonly data: unknown,
  ) {}
}
const NEG_ZERO = new Marker(T.NEG_ZERO, null);

// ---- encoding ---------------------------------------------------------------------------------------

let active: EncodeContext | null = null;
/**
 * The CLASS extension writes `[name, instance]`; msgpackr then meets the instance again, and this makes
 * the BODY extension take it and hand it back for msgpackr to write as a plain record of its properties.
 */
let pendingBody: object | undefined;
/**
 * On the fast path, shared objects that reach our extensions (class instances, Sets, Dates, …) are
 * written by DEF as `[id, object]`; msgpackr then meets the object again, and this makes it be written
 * as what it is. (On the transforming path, `Transform` has replaced shared objects by markers already.)
 */
let pendingDef: object | undefined;
let hookSharing = false;
// msgpackr asks every extension in turn, so the classification of the object it is asking about is cached.
let lastObject: object | undefined;
let lastType = REJECT;

function typeOf(o: object, ctx: EncodeContext): number {
  if (o === pendingBody) return BODY;
  if (o === lastObject) return lastType;
  let t: number;
  if (o instanceof Marker) t = o.type;
  else if (hookSharing && o !== pendingDef && ctx.shared.has(o)) t = ctx.ids.has(o) ? T.REF : T.DEF;
  else {
    if (o === pendingDef) pendingDef = undefined;
    const registry = ctx.registry;
    const proto = Object.getPrototypeOf(o) as object | null;
    // msgpackr handles plain objects, arrays and Maps itself by testing `value.constructor`; they only get
    // here when an own property named "constructor" shadows the real one.
    if (proto === Object.prototype) t = T.ENTRIES;
    else if (proto === Array.prototype || proto === Map.prototype) t = COPY;
    else if (proto === Date.prototype) t = T.DATE;
    else if (proto === Set.prototype) t = T.SET;
    else if (proto === null) t = T.NULL_PROTO;
    else {
      const bin = binaryKindOf(o);
      if (bin !== undefined) t = bin.code;
      else t = registry.byPrototype(proto) !== undefined ? T.CLASS : REJECT;
    }
  }
  lastObject = o;
  lastType = t;
  return t;
}

/**
 * A class whose `instanceof` matches the objects of extension type `type`, only while we encode. The
 * matcher msgpackr asks first (`first`, the last one installed) forgets the cached classification, so each
 * object msgpackr dispatches is classified afresh once (a shared object is DEF the first time, REF after).
 */
function matcher(type: number, first = false): abstract new () => object {
  // biome-ignore lint/complexity/noStaticOnlyClass: msgpackr matches extensions with instanceof; this class only answers it.
  return class {
    static [Symbol.hasInstance](v: unknown): boolean {
      if (active === null || (typeof v !== "object" && typeof v !== "function") || v === null) return false;
      if (first) lastObject = undefined;
      return typeOf(v, active) === type;
    }
  };
}

let decoding: DecodeState | null = null;

interface DecodeState {
  readonly ctx: DecodeContext;
  /** A reference to an object not yet complete (a cycle) was read: run `fixup` afterwards. */
  pending: boolean;
}

function decodeState(): DecodeState {
  if (decoding === null) throw new Error("@immortal/checkpoint extension read outside a checkpoint decode");
  return decoding;
}

/** Resolved after the enclosing definition is complete (see `fixup`). */
class Pending {
  constructor(readonly id: number) {}
}

const spreadProps = (o: object): Record<string, unknown> => ({ ...(o as Record<string, unknown>) });

/**
 * The first `n` elements as a fresh array (holes read as undefined). Not `slice`: that consults
 * `constructor[Symbol.species]`, which an own "constructor" property can break.
 */
function copyArray(a: readonly unknown[], n: number): unknown[] {
  const out = new Array<unknown>(n);
  for (let i = 0; i < n; i++) out[i] = a[i];
  return out;
}

/** [key, value, key, value, …] of the own enumerable string-keyed properties. */
function entriesOf(o: object): unknown[] {
  const rec = o as Record<string, unknown>;
  const out: unknown[] = [];
  for (const k of Object.keys(rec)) out.push(k, rec[k]);
  return out;
}

function readProps(
  props: unknown,
  out: Record<string, unknown>,
  unsafe: ReadonlySet<string> | undefined,
): void {
  if (typeof props !== "object" || props === null || Object.getPrototypeOf(props) !== Object.prototype) {
    throw new DeserializationError("BAD_VALUE", "properties are not an object");
  }
  const rec = props as Record<string, unknown>;
  for (const k of Object.keys(rec)) setOwn(out, k, rec[k], unsafe);
}

function isArray(v: unknown, what: string): unknown[] {
  if (!Array.isArray(v)) throw new DeserializationError("BAD_VALUE", `${what} is not an array`);
  return v;
}

const dateGetTime = Date.prototype.getTime;
const objectHasOwn = Object.prototype.hasOwnProperty;

let extensionsInstalled = false;

/** Installs our extensions into msgpackr's global table, once, on first use of the msgpack serializer. */
export function installExtensions(): void {
  if (extensionsInstalled) return;
  extensionsInstalled = true;
  // msgpackr tries extensions most recently added first: add the catch-all first so it is tried last, and
  // the common types (class instances, Dates) last so they are found first.
  addExtension({
    Class: matcher(REJECT),
    write(v: object): never {
      const registry = active!.registry;
      throw new NotSerializableError("UNSUPPORTED_VALUE", "state", describe(v), unsupportedHint(v, registry));
    },
  });
  addExtension({
    Class: matcher(COPY),
    // No type: the copy (whose `constructor` is the inherited one again) is written as a plain array or Map.
    write: (v: object) => (Array.isArray(v) ? copyArray(v, v.length) : new Map(v as Map<unknown, unknown>)),
  });
  for (const kind of BINARY_KINDS) addBinary(kind);
  addExtension({
    Class: matcher(T.REF),
    type: T.REF,
    write: (v: object) => (v instanceof Marker ? v.data : active!.ids.get(v)),
    read(id: unknown) {
      const st = decodeState();
      const ref = checkId(id);
      const o = st.ctx.objects[ref];
      if (o !== undefined) return o;
      st.pending = true;
      return new Pending(ref);
    },
  });
  addExtension({
    Class: matcher(T.DEF),
    type: T.DEF,
    write(v: object) {
      if (v instanceof Marker) return v.data;
      pendingDef = v;
      return [defineId(active!, v), v];
    },
    read(data: unknown) {
      const [id, value] = isArray(data, "definition");
      const objects = decodeState().ctx.objects;
      const defId = checkId(id);
      if (typeof value !== "object" || value === null || value instanceof Pending) {
        throw new DeserializationError("BAD_VALUE", "definition of a non-object");
      }
      if (objects[defId] !== undefined)
        throw new DeserializationError("BAD_REFERENCE", `object ${defId} defined twice`);
      objects[defId] = value;
      return value;
    },
  });
  addExtension({
    Class: matcher(T.ENTRIES),
    type: T.ENTRIES,
    write: (v: object) => (v instanceof Marker ? v.data : entriesOf(v)),
    read(data: unknown) {
      const list = isArray(data, "entries");
      if (list.length % 2 !== 0) throw new DeserializationError("BAD_VALUE", "odd number of entries");
      const out: Record<string, unknown> = {};
      for (let i = 0; i < list.length; i += 2) {
        const k = list[i];
        if (typeof k !== "string")
          throw new DeserializationError("BAD_VALUE", "property name is not a string");
        setOwn(out, k, list[i + 1], PLAIN_UNSAFE_KEYS);
      }
      return out;
    },
  });
  addExtension({
    Class: matcher(T.STRING16),
    type: T.STRING16,
    // UTF-16 code units as they are: the one encoding that keeps lone surrogates.
    pack: (m: Marker) => Buffer.from(m.data as string, "utf16le"),
    unpack(data: Uint8Array) {
      if (data.length % 2 !== 0) throw new DeserializationError("BAD_VALUE", "odd UTF-16 byte length");
      return Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString("utf16le");
    },
  });
  addExtension({
    Class: matcher(T.NEG_ZERO),
    type: T.NEG_ZERO,
    pack: () => new Uint8Array(1),
    unpack: () => -0,
  });
  addExtension({
    Class: matcher(T.NULL_PROTO),
    type: T.NULL_PROTO,
    write: (v: object) => (v instanceof Marker ? v.data : spreadProps(v)),
    read(props: unknown) {
      const out = Object.create(null) as Record<string, unknown>;
      readProps(props, out, undefined);
      return out;
    },
  });
  addExtension({
    Class: matcher(T.SET),
    type: T.SET,
    write: (v: object) => (v instanceof Marker ? v.data : [...(v as Set<unknown>)]),
    read: (data: unknown) => new Set(isArray(data, "Set")),
  });
  addExtension({
    Class: matcher(T.DATE),
    type: T.DATE,
    // The time value as a MessagePack number (NaN for an invalid Date): no buffer per Date.
    write: (d: Date) => dateGetTime.call(d),
    read(t: unknown) {
      if (typeof t !== "number") throw new DeserializationError("BAD_VALUE", "Date is not a number");
      return new Date(t);
    },
  });
  addExtension({
    Class: matcher(T.CLASS),
    type: T.CLASS,
    write(v: object) {
      if (v instanceof Marker) return v.data;
      const name = active!.registry.byPrototype(Object.getPrototypeOf(v) as object)!.name;
      // msgpackr writes records with for…in filtered by `object.hasOwnProperty`: only trust that filter
      // when it is the real one, else copy the own properties out.
      if ((v as { hasOwnProperty?: unknown }).hasOwnProperty !== objectHasOwn) return [name, spreadProps(v)];
      pendingBody = v;
      return [name, v];
    },
    read(data: unknown) {
      const list = isArray(data, "class instance");
      const name = list[0];
      const props = list[1];
      if (list.length !== 2 || typeof name !== "string")
        throw new DeserializationError("BAD_VALUE", "bad class instance");
      const entry = decodeState().ctx.registry.byName(name);
      if (entry === undefined) return instantiate(decodeState().ctx.registry, name); // throws UNKNOWN_CLASS
      if (typeof props !== "object" || props === null || Object.getPrototypeOf(props) !== Object.prototype) {
        throw new DeserializationError("BAD_VALUE", "class properties are not an object");
      }
      // `props` is a fresh object msgpackr just built, its properties already own data properties: giving it
      // the class's prototype is cheaper than copying, and no setter on the prototype can run.
      return Object.setPrototypeOf(props, entry.prototype) as object;
    },
  });
  addExtension({
    Class: matcher(BODY, true),
    // No type, and the value itself back: msgpackr writes it as a plain record (see `pendingBody`).
    write(v: object) {
      pendingBody = undefined;
      return v;
    },
  });
}

function addBinary(kind: BinaryKind): void {
  addExtension({
    Class: matcher(kind.code),
    type: kind.code,
    pack: (v: object) => littleEndianBytesOf(v, kind),
    unpack(data: Uint8Array) {
      if (data.length % kind.bytesPerElement !== 0) {
        throw new DeserializationError(
          "BAD_VALUE",
          `${kind.name} byte length is not a multiple of ${kind.bytesPerElement}`,
        );
      }
      // A copy the value owns, aligned, and no longer tied to the input buffer.
      return fromLittleEndian(Uint8Array.prototype.slice.call(data).buffer, kind);
    },
  });
}

/**
 * Copy-on-write rewrite of a state for msgpackr: -0, ill-formed strings and awkward keys become markers,
 * shared objects become a definition at first sight and references afterwards. Returns `v` itself when
 * nothing under it needed a change, so only the spine leading to a change is copied.
 */
class Transform {
  readonly #ctx: EncodeContext;
  /** One REF marker per id: msgpackr does not care that it meets the same marker many times. */
  readonly #refs: Marker[] = [];

  constructor(ctx: EncodeContext) {
    this.#ctx = ctx;
  }

  t(v: unknown): unknown {
    switch (typeof v) {
      case "string":
        return isWellFormed(v) ? v : new Marker(T.STRING16, v);
      case "number":
        return v === 0 && 1 / v < 0 ? NEG_ZERO : v;
      case "object":
        return v === null ? v : this.#object(v);
      default:
        return v;
    }
  }

  #object(o: object): unknown {
    const ctx = this.#ctx;
    if (!ctx.shared.has(o)) return this.#inner(o);
    const id = ctx.ids.get(o);
    if (id !== undefined) {
      let ref = this.#refs[id];
      if (ref === undefined) ref = this.#refs[id] = new Marker(T.REF, id);
      return ref;
    }
    const defId = defineId(ctx, o);
    return new Marker(T.DEF, [defId, this.#inner(o)]);
  }

  #inner(o: object): unknown {
    const registry = this.#ctx.registry;
    switch (kindOf(o, registry)) {
      case Kind.PLAIN:
        return this.#props(o);
      case Kind.ARRAY: {
        const a = o as unknown[];
        let out: unknown[] | undefined;
        for (let i = 0; i < a.length; i++) {
          const v = a[i];
          const tv = this.t(v);
          if (out === undefined && !Object.is(tv, v)) out = copyArray(a, i);
          if (out !== undefined) out.push(tv);
        }
        return out ?? a;
      }
      case Kind.MAP: {
        const pairs: [unknown, unknown][] = [];
        let changed = false;
        for (const [k, v] of o as Map<unknown, unknown>) {
          const tk = this.t(k);
          const tv = this.t(v);
          if (!Object.is(tk, k) || !Object.is(tv, v)) changed = true;
          pairs.push([tk, tv]);
        }
        return changed ? new Map(pairs) : o;
      }
      case Kind.SET: {
        const items: unknown[] = [];
        let changed = false;
        for (const v of o as Set<unknown>) {
          const tv = this.t(v);
          if (!Object.is(tv, v)) changed = true;
          items.push(tv);
        }
        return changed ? new Marker(T.SET, items) : o;
      }
      case Kind.CLASS: {
        const p = this.#props(o);
        if (p === o) return o;
        return new Marker(T.CLASS, [registry.byPrototype(Object.getPrototypeOf(o) as object)!.name, p]);
      }
      case Kind.NULL_PROTO: {
        const p = this.#props(o);
        return p === o ? o : new Marker(T.NULL_PROTO, p);
      }
      default:
        return o; // Dates and binary values hold nothing to rewrite
    }
  }

  /** `o` if unchanged, else a plain object of rewritten values, or an ENTRIES marker if a key is awkward. */
  #props(o: object): unknown {
    const rec = o as Record<string, unknown>;
    const keys = Object.keys(o);
    for (let i = 0; i < keys.length; i++) {
      if (isAwkwardKey(keys[i]!)) {
        const entries: unknown[] = [];
        for (const k of keys) entries.push(this.t(k), this.t(rec[k]));
        return new Marker(T.ENTRIES, entries);
      }
    }
    let out: Record<string, unknown> | undefined;
    for (let i = 0; i < keys.length; i++) {
      const k = keys[i]!;
      const v = rec[k];
      const tv = this.t(v);
      if (out === undefined && !Object.is(tv, v)) {
        out = {};
        for (let j = 0; j < i; j++) out[keys[j]!] = rec[keys[j]!];
      }
      if (out !== undefined) out[k] = tv;
    }
    return out ?? o;
  }
}

/** Replaces the `Pending` references left by cycles, now that every object they name is complete. */
function fixup(root: unknown, objects: readonly unknown[]): unknown {
  const resolve = (v: unknown): unknown => {
    if (!(v instanceof Pending)) return v;
    const o = objects[v.id];
    if (o === undefined)
      throw new DeserializationError("BAD_REFERENCE", `reference to undefined object ${v.id}`);
    return o;
  };
  const visited = new Set<object>();
  const walk = (v: unknown): void => {
    if (typeof v !== "object" || v === null || visited.has(v)) return;
    visited.add(v);
    if (Array.isArray(v)) {
      for (let i = 0; i < v.length; i++) {
        v[i] = resolve(v[i]);
        walk(v[i]);
      }
    } else if (v instanceof Map) {
      const entries = [...(v as Map<unknown, unknown>)].map(([k, x]) => [resolve(k), resolve(x)] as const);
      v.clear();
      for (const [k, x] of entries) {
        v.set(k, x);
        walk(k);
        walk(x);
      }
    } else if (v instanceof Set) {
      const items = [...(v as Set<unknown>)].map(resolve);
      v.clear();
      for (const x of items) {
        v.add(x);
        walk(x);
      }
    } else if (!(v instanceof Date) && !ArrayBuffer.isView(v) && !(v instanceof ArrayBuffer)) {
      // Plain, null-prototype and class objects: their keys are already own data properties, so
      // assignment replaces the value without reaching any setter.
      const rec = v as Record<string, unknown>;
      for (const k of Object.keys(rec)) {
        const x = rec[k];
        if (x instanceof Pending) rec[k] = resolve(x);
        walk(rec[k]);
      }
    }
  };
  const out = resolve(root);
  walk(out);
  return out;
}

// ---- the codec --------------------------------------------------------------------------------------

const packr = new Packr({
  useRecords: true, // plain objects as records: compact, and decoded much faster
  moreTypes: false,
  structuredClone: false,
  useToJSON: false, // state is what the properties hold, not what toJSON says
  useBigIntExtension: true, // bigints beyond 64 bits
  bundleStrings: false,
});
const unpackr = new Unpackr({
  mapsAsObjects: false, // MessagePack maps are Maps; plain objects arrive as records
  int64AsType: "bigint",
  moreTypes: false,
  structuredClone: false,
});

/** msgpackr keeps encoding into the buffer of its largest message; past this we hand it a fresh small one. */
const MAX_RETAINED_TARGET = 4 << 20;

function pack(value: unknown, ctx: EncodeContext, reserve: number): Uint8Array {
  const transform = ctx.awkward || ctx.sharedNative;
  const v = transform ? new Transform(ctx).t(value) : value;
  hookSharing = !transform && ctx.shared.size > 0;
  active = ctx;
  let out: Uint8Array;
  try {
    out = reserve > 0 ? packr.pack(v, RESERVE_START_SPACE | reserve) : packr.pack(v);
  } finally {
    active = null;
    lastObject = undefined;
    pendingBody = undefined;
    pendingDef = undefined;
  }
  if (out.buffer.byteLength > MAX_RETAINED_TARGET) {
    // Without this, every later (small) result would be a view that pins that large buffer.
    packr.useBuffer(Buffer.allocUnsafeSlow(64 * 1024));
  }
  return out;
}

function unpack(bytes: Uint8Array, ctx: DecodeContext): unknown {
  const st: DecodeState = { ctx, pending: false };
  decoding = st;
  try {
    const v: unknown = unpackr.unpack(bytes);
    return st.pending ? fixup(v, ctx.objects) : v;
  } catch (e) {
    throw asDecodeError(e);
  } finally {
    decoding = null;
    clearSource(); // msgpackr would otherwise keep a reference to the input
  }
}

export const msgpackCodec: Codec = {
  encodeValue: (value, ctx) => pack(value, ctx, 0),
  decodeValue: unpack,
  encodeItems: (items, ctx, reserve) => pack(items, ctx, reserve),
  decodeItems(bytes, ctx) {
    const list = unpack(bytes, ctx);
    if (!Array.isArray(list)) throw new DeserializationError("BAD_VALUE", "frame does not hold a list");
    return list;
  },
};
