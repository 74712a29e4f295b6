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
  type BinaryKind,
  binaryKindByName,
  binaryKindOf,
  describe,
  fromLittleEndian,
  Kind,
  kindOf,
  littleEndianBytesOf,
} from "./kinds.js";
import type { RegisteredClass } from "./registry.js";

/**
 * Tagged JSON. Anything JSON has natively is written as itself; everything else is a one-key-tagged
 * object `{"$t": <tag>, ...}`. User property names starting with "$" get one more "$" on the way out (and
 * lose it on the way in), so a user object can never be mistaken for a tag. See the README for the table.
 */
export const TAG_KEY = "$t";

/**
 * The string being built is turned into UTF-8 bytes past this length. Building one long string by `+=`
 * makes a rope of tiny pieces that survives into the old generation (the collector then dominated the
 * encode time); short strings die young. It also lets outputs exceed V8's maximum string length.
 */
const FLUSH_CHARS = 16 * 1024;
/** Slabs start at a frame's size and double up to the maximum for whole-value outputs. */
const FIRST_SLAB = 96 * 1024;
const MAX_SLAB = 8 << 20;
/** Base64 strings from this length on are written as pieces of their own. */
const LARGE_CHARS = 1 << 20;
const MAX_CACHED_KEYS = 4096;

const dateGetTime = Date.prototype.getTime;
const dateToISOString = Date.prototype.toISOString;

class JsonWriter {
  out = "";
  /** Full byte slabs, then `#slab` being filled up to `#used`; none until the first flush. */
  readonly #slabs: Uint8Array[] = [];
  #slab: Buffer | null = null;
  #used = 0;
  /** Whether the first slab (the one holding the reserved bytes) was allocated. */
  #started = false;
  readonly #reserve: number;
  readonly #ctx: EncodeContext;
  /** `"key":` strings, escaped; property names repeat a lot across the objects of a state. */
  readonly #keyCache = new Map<string, string>();
  readonly #classPrefix = new Map<RegisteredClass, string>();

  /** `reserve`: free bytes to leave at the start of the output (for a frame header). */
  constructor(ctx: EncodeContext, reserve: number) {
    this.#ctx = ctx;
    this.#reserve = reserve;
  }

  #flush(): void {
    const s = this.out;
    this.out = "";
    let slab = this.#slab;
    if (slab === null) {
      const reserve = this.#started ? 0 : this.#reserve;
      this.#started = true;
      slab = this.#slab = Buffer.allocUnsafeSlow(Math.max(FIRST_SLAB, reserve + s.length * 3));
      this.#used = reserve;
    } else if (this.#used + s.length * 3 > slab.length) {
      // Worst case 3 bytes per UTF-16 unit; start a new slab rather than split a string.
      this.#slabs.push(slab.subarray(0, this.#used));
      slab = this.#slab = Buffer.allocUnsafeSlow(Math.max(Math.min(MAX_SLAB, slab.length * 2), s.length * 3));
      this.#used = 0;
    }
    this.#used += slab.write(s, this.#used);
  }

  value(v: unknown): void {
    switch (typeof v) {
      case "string":
        this.out += JSON.stringify(v);
        return;
      case "number":
        if (Number.isFinite(v)) this.out += v === 0 && 1 / v < 0 ? '{"$t":"-0"}' : String(v);
        else if (Number.isNaN(v)) this.out += '{"$t":"NaN"}';
        else this.out += v > 0 ? '{"$t":"Infinity"}' : '{"$t":"-Infinity"}';
        return;
      case "boolean":
        this.out += v ? "true" : "false";
        return;
      case "undefined":
        this.out += '{"$t":"undefined"}';
        return;
      case "bigint":
        this.out += `{"$t":"bigint","v":"${v}"}`;
        return;
      case "object":
        if (v === null) this.out += "null";
        else this.#object(v);
        return;
      default:
        throw changedDuringEncode(v);
    }
  }

  #object(o: object): void {
    const ctx = this.#ctx;
    if (ctx.shared.has(o)) {
      const id = ctx.ids.get(o);
      if (id !== undefined) {
        this.out += `{"$t":"ref","id":${id}}`;
        return;
      }
      this.out += `{"$t":"def","id":${defineId(ctx, o)},"v":`;
      this.#inner(o);
      this.out += "}";
    } else {
      this.#inner(o);
    }
    if (this.out.length > FLUSH_CHARS) this.#flush();
  }

  #inner(o: object): void {
    switch (kindOf(o, this.#ctx.registry)) {
      case Kind.PLAIN:
        this.#props(o);
        return;
      case Kind.ARRAY: {
        const a = o as unknown[];
        this.out += "[";
        for (let i = 0; i < a.length; i++) {
          if (i > 0) this.out += ",";
          this.value(a[i]);
        }
        this.out += "]";
        return;
      }
      case Kind.MAP: {
        this.out += '{"$t":"Map","v":[';
        let first = true;
        for (const [k, v] of o as Map<unknown, unknown>) {
          this.out += first ? "[" : ",[";
          first = false;
          this.value(k);
          this.out += ",";
          this.value(v);
          this.out += "]";
        }
        this.out += "]}";
        return;
      }
      case Kind.SET: {
        this.out += '{"$t":"Set","v":[';
        let first = true;
        for (const v of o as Set<unknown>) {
          if (!first) this.out += ",";
          first = false;
          this.value(v);
        }
        this.out += "]}";
        return;
      }
      case Kind.DATE: {
        const t = dateGetTime.call(o as Date);
        this.out += Number.isNaN(t)
          ? '{"$t":"Date","v":null}'
          : `{"$t":"Date","v":"${dateToISOString.call(o as Date)}"}`;
        return;
      }
      case Kind.BINARY: {
        const kind = binaryKindOf(o)!;
        const bytes = littleEndianBytesOf(o, kind);
        const b64 = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("base64");
        if (b64.length < LARGE_CHARS) {
          this.out += `{"$t":"${kind.name}","v":"${b64}"}`;
        } else {
          this.out += `{"$t":"${kind.name}","v":"`;
          this.#appendAscii(b64);
          this.out += '"}';
        }
        return;
      }
      case Kind.CLASS: {
        const entry = this.#ctx.registry.byPrototype(Object.getPrototypeOf(o) as object)!;
        let prefix = this.#classPrefix.get(entry);
        if (prefix === undefined) {
          prefix = `{"$t":"class","name":${JSON.stringify(entry.name)},"v":`;
          this.#classPrefix.set(entry, prefix);
        }
        this.out += prefix;
        this.#props(o);
        this.out += "}";
        return;
      }
      case Kind.NULL_PROTO:
        this.out += '{"$t":"null-proto","v":';
        this.#props(o);
        this.out += "}";
        return;
      default:
        throw changedDuringEncode(o);
    }
  }

  #props(o: object): void {
    const rec = o as Record<string, unknown>;
    const keys = Object.keys(o);
    this.out += "{";
    for (let i = 0; i < keys.length; i++) {
      const k = keys[i]!;
      let prefix = this.#keyCache.get(k);
      if (prefix === undefined) {
        prefix = `${JSON.stringify(k.charCodeAt(0) === 0x24 ? `$${k}` : k)}:`;
        if (this.#keyCache.size < MAX_CACHED_KEYS) this.#keyCache.set(k, prefix);
      }
      this.out += i === 0 ? prefix : `,${prefix}`;
      this.value(rec[k]);
    }
    this.out += "}";
  }

  /** Appends a long ASCII string (base64) as its own piece: one encoding pass, no slab growth. */
  #appendAscii(s: string): void {
    this.#flush();
    this.#slabs.push(this.#slab!.subarray(0, this.#used), Buffer.from(s, "latin1"));
    this.#slab = null;
  }

  /** Everything written, as UTF-8, after the reserved bytes. */
  toBytes(): Uint8Array {
    if (!this.#started) {
      // Small output (one frame's worth): one exact allocation, no slab.
      const out = Buffer.allocUnsafe(this.#reserve + Buffer.byteLength(this.out));
      out.write(this.out, this.#reserve);
      this.out = "";
      return out;
    }
    this.#flush();
    const slab = this.#slab!;
    const last = slab.subarray(0, this.#used);
    if (this.#slabs.length === 0) {
      // One slab: hand it out as is unless most of it would be wasted.
      return slab.length - this.#used > Math.max(65536, this.#used / 4) ? last.slice() : last;
    }
    this.#slabs.push(last);
    return Buffer.concat(this.#slabs);
  }
}

/** A getter returned something else the second time round (the plan had accepted the first value). */
function changedDuringEncode(v: unknown): NotSerializableError {
  return new NotSerializableError(
    "UNSUPPORTED_VALUE",
    "state",
    describe(v),
    "a getter returned a different value while the state was being encoded",
  );
}

// ---- decoding -----------------------------------------------------------------------------------------

type JsonObject = Record<string, unknown>;

const utf8 = new TextDecoder("utf-8", { fatal: true });
const DECIMAL = /^-?\d+$/;

function isJsonObject(v: unknown): v is JsonObject {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function badValue(message: string): DeserializationError {
  return new DeserializationError("BAD_VALUE", message);
}

class JsonReader {
  readonly #ctx: DecodeContext;

  constructor(ctx: DecodeContext) {
    this.#ctx = ctx;
  }

  value(node: unknown): unknown {
    if (typeof node !== "object" || node === null) return node;
    if (Array.isArray(node)) return this.#array(node, -1);
    const tag = (node as JsonObject)[TAG_KEY];
    if (tag === undefined) return this.#plain(node as JsonObject, -1);
    return this.#tagged(node as JsonObject, tag, -1);
  }

  /** Registers `o` under `id` before its children are decoded, so cycles resolve to it. */
  #define<T>(o: T, id: number): T {
    if (id >= 0) {
      if (this.#ctx.objects[id] !== undefined)
        throw new DeserializationError("BAD_REFERENCE", `object ${id} defined twice`);
      this.#ctx.objects[id] = o;
    }
    return o;
  }

  #array(a: unknown[], id: number): unknown[] {
    // JSON.parse gave us a fresh array: decode in place.
    this.#define(a, id);
    for (let i = 0; i < a.length; i++) a[i] = this.value(a[i]);
    return a;
  }

  #plain(node: JsonObject, id: number): JsonObject {
    return (
      this.#inPlace(node, id, undefined) ??
      this.#copy(node, this.#define({} as JsonObject, id), PLAIN_UNSAFE_KEYS)
    );
  }

  /**
   * JSON.parse gave us a fresh object: when no key needs un-escaping, decode its values in place and give
   * it `proto`. Its properties are already own data properties, so assignment replaces values without
   * reaching a setter, and no prototype setter can run. Returns undefined (having changed nothing) when a
   * key starts with "$".
   */
  #inPlace(node: JsonObject, id: number, proto: object | null | undefined): JsonObject | undefined {
    const keys = Object.keys(node);
    for (let i = 0; i < keys.length; i++) if (keys[i]!.charCodeAt(0) === 0x24) return undefined;
    if (proto !== undefined) Object.setPrototypeOf(node, proto);
    this.#define(node, id);
    for (let i = 0; i < keys.length; i++) {
      const k = keys[i]!;
      node[k] = this.value(node[k]);
    }
    return node;
  }

  #copy(node: JsonObject, out: JsonObject, unsafe: ReadonlySet<string> | undefined): JsonObject {
    this.#props(node, out, unsafe);
    return out;
  }

  #props(node: JsonObject, out: JsonObject, unsafe: ReadonlySet<string> | undefined): void {
    for (const k of Object.keys(node)) {
      let key = k;
      if (k.charCodeAt(0) === 0x24) {
        if (k.charCodeAt(1) !== 0x24) throw badValue(`unescaped property name ${JSON.stringify(k)}`);
        key = k.slice(1);
      }
      setOwn(out, key, this.value(node[k]), unsafe);
    }
  }

  #propsNode(node: JsonObject, what: string): JsonObject {
    const v = node.v;
    if (!isJsonObject(v) || v[TAG_KEY] !== undefined) throw badValue(`${what} needs an object of properties`);
    return v;
  }

  #tagged(node: JsonObject, tag: unknown, id: number): unknown {
    if (typeof tag !== "string") throw badValue("tag is not a string");
    const objects = this.#ctx.objects;
    // Primitives cannot be shared, so only object tags may carry an id.
    switch (tag) {
      case "undefined":
        return id < 0 ? undefined : this.#noId(tag);
      case "NaN":
        return id < 0 ? Number.NaN : this.#noId(tag);
      case "Infinity":
        return id < 0 ? Number.POSITIVE_INFINITY : this.#noId(tag);
      case "-Infinity":
        return id < 0 ? Number.NEGATIVE_INFINITY : this.#noId(tag);
      case "-0":
        return id < 0 ? -0 : this.#noId(tag);
      case "bigint": {
        if (id >= 0) return this.#noId(tag);
        const v = node.v;
        if (typeof v !== "string" || !DECIMAL.test(v)) throw badValue("bigint needs a decimal string");
        return BigInt(v);
      }
      case "ref": {
        if (id >= 0) return this.#noId(tag);
        const ref = checkId(node.id);
        const o = objects[ref];
        if (o === undefined)
          throw new DeserializationError("BAD_REFERENCE", `reference to undefined object ${ref}`);
        return o;
      }
      case "def": {
        if (id >= 0) return this.#noId(tag);
        const defId = checkId(node.id);
        const v = node.v;
        if (typeof v !== "object" || v === null) throw badValue("def needs an object");
        if (Array.isArray(v)) return this.#array(v, defId);
        const inner = (v as JsonObject)[TAG_KEY];
        return inner === undefined
          ? this.#plain(v as JsonObject, defId)
          : this.#tagged(v as JsonObject, inner, defId);
      }
      case "Map": {
        const v = node.v;
        if (!Array.isArray(v)) throw badValue("Map needs an array of entries");
        const out = this.#define(new Map<unknown, unknown>(), id);
        for (const e of v) {
          if (!Array.isArray(e) || e.length !== 2) throw badValue("Map entry is not a [key, value] pair");
          const key = this.value(e[0]);
          out.set(key, this.value(e[1]));
        }
        return out;
      }
      case "Set": {
        const v = node.v;
        if (!Array.isArray(v)) throw badValue("Set needs an array");
        const out = this.#define(new Set<unknown>(), id);
        for (const e of v) out.add(this.value(e));
        return out;
      }
      case "Date": {
        const v = node.v;
        let t = Number.NaN;
        if (typeof v === "string") {
          t = Date.parse(v);
          if (Number.isNaN(t)) throw badValue(`invalid date ${JSON.stringify(v.slice(0, 40))}`);
        } else if (v !== null) {
          throw badValue("Date needs an ISO string or null");
        }
        return this.#define(new Date(t), id);
      }
      case "class": {
        const props = this.#propsNode(node, "class");
        const entry = typeof node.name === "string" ? this.#ctx.registry.byName(node.name) : undefined;
        if (entry !== undefined) {
          const done = this.#inPlace(props, id, entry.prototype);
          if (done !== undefined) return done;
        }
        const { object, unsafe } = instantiate(this.#ctx.registry, node.name);
        return this.#copy(props, this.#define(object, id), unsafe);
      }
      case "null-proto": {
        const props = this.#propsNode(node, "null-proto");
        return (
          this.#inPlace(props, id, null) ??
          this.#copy(props, this.#define(Object.create(null) as JsonObject, id), undefined)
        );
      }
      default: {
        const kind = binaryKindByName(tag);
        if (kind === undefined)
          throw new DeserializationError("UNKNOWN_TAG", `unknown tag ${JSON.stringify(tag)}`);
        return this.#define(decodeBase64(node.v, kind), id);
      }
    }
  }

  #noId(tag: string): never {
    throw badValue(`a ${tag} value cannot be shared`);
  }
}

function decodeBase64(v: unknown, kind: BinaryKind): object {
  if (typeof v !== "string" || v.length % 4 !== 0) throw badValue(`${kind.name} needs padded base64`);
  const pad = v.endsWith("==") ? 2 : v.endsWith("=") ? 1 : 0;
  const n = (v.length / 4) * 3 - pad;
  if (n % kind.bytesPerElement !== 0)
    throw badValue(`${kind.name} byte length ${n} is not a multiple of ${kind.bytesPerElement}`);
  // Decode straight into a fresh, exactly sized buffer: the typed array must own it (and be aligned).
  const buffer = new ArrayBuffer(n);
  if (Buffer.from(buffer).write(v, "base64") !== n) throw badValue(`${kind.name} has invalid base64`);
  return fromLittleEndian(buffer, kind);
}

function parse(bytes: Uint8Array): unknown {
  return JSON.parse(utf8.decode(bytes));
}

export const jsonCodec: Codec = {
  encodeValue(value, ctx) {
    const w = new JsonWriter(ctx, 0);
    w.value(value);
    return w.toBytes();
  },
  decodeValue(bytes, ctx) {
    try {
      return new JsonReader(ctx).value(parse(bytes));
    } catch (e) {
      throw asDecodeError(e);
    }
  },
  encodeItems(items, ctx, reserve) {
    const w = new JsonWriter(ctx, reserve);
    w.out = "[";
    for (let i = 0; i < items.length; i++) {
      if (i > 0) w.out += ",";
      w.value(items[i]);
    }
    w.out += "]";
    return w.toBytes();
  },
  decodeItems(bytes, ctx) {
    try {
      const list = parse(bytes);
      if (!Array.isArray(list)) throw badValue("frame does not hold a list");
      const r = new JsonReader(ctx);
      for (let i = 0; i < list.length; i++) list[i] = r.value(list[i]);
      return list;
    } catch (e) {
      throw asDecodeError(e);
    }
  },
};
