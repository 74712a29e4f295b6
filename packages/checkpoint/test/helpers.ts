import {
  ClassRegistry,
  createJsonSerializer,
  createMsgpackSerializer,
  type StateSerializer,
} from "../src/index.js";

/**
 * Strict structural equality for decoded states: same prototypes, Object.is on numbers (so -0 ≠ 0 and
 * NaN = NaN), same key, entry and element order, same typed-array type and bytes, and the same *shape of
 * identity*: two references to one object on one side must be two references to one object on the other
 * (checked with a bijection, which also makes cycles terminate). Array holes equal `undefined`, as both
 * formats write them. Returns a description of the first difference, or undefined.
 */
export function difference(a: unknown, b: unknown): string | undefined {
  const ab = new Map<object, object>();
  const ba = new Map<object, object>();

  const cmp = (x: unknown, y: unknown, path: string): string | undefined => {
    if (typeof x !== typeof y) return `${path}: ${typeof x} vs ${typeof y}`;
    if (typeof x !== "object" || x === null || y === null) {
      return Object.is(x, y) ? undefined : `${path}: ${String(x)} vs ${String(y)}`;
    }
    const yo = y as object;
    const seen = ab.get(x);
    if (seen !== undefined || ba.has(yo)) {
      return seen === yo && ba.get(yo) === x ? undefined : `${path}: identity (sharing) differs`;
    }
    ab.set(x, yo);
    ba.set(yo, x);
    if (Object.getPrototypeOf(x) !== Object.getPrototypeOf(yo)) return `${path}: prototype differs`;
    if (Array.isArray(x)) {
      const ya = yo as unknown[];
      if (x.length !== ya.length) return `${path}: length ${x.length} vs ${ya.length}`;
      for (let i = 0; i < x.length; i++) {
        const d = cmp(x[i], ya[i], `${path}[${i}]`);
        if (d) return d;
      }
      return undefined;
    }
    if (x instanceof Map) {
      const xe = [...x];
      const ye = [...(yo as Map<unknown, unknown>)];
      if (xe.length !== ye.length) return `${path}: Map size ${xe.length} vs ${ye.length}`;
      for (let i = 0; i < xe.length; i++) {
        const d =
          cmp(xe[i]![0], ye[i]![0], `${path}.keys()[${i}]`) ??
          cmp(xe[i]![1], ye[i]![1], `${path}.values()[${i}]`);
        if (d) return d;
      }
      return undefined;
    }
    if (x instanceof Set) {
      const xe = [...x];
      const ye = [...(yo as Set<unknown>)];
      if (xe.length !== ye.length) return `${path}: Set size ${xe.length} vs ${ye.length}`;
      for (let i = 0; i < xe.length; i++) {
        const d = cmp(xe[i], ye[i], `${path}.values()[${i}]`);
        if (d) return d;
      }
      return undefined;
    }
    if (x instanceof Date) {
      return Object.is(x.getTime(), (yo as Date).getTime()) ? undefined : `${path}: date differs`;
    }
    if (x instanceof ArrayBuffer || ArrayBuffer.isView(x)) {
      const xb =
        x instanceof ArrayBuffer ? new Uint8Array(x) : new Uint8Array(x.buffer, x.byteOffset, x.byteLength);
      const yv = yo as ArrayBuffer | ArrayBufferView;
      const yb =
        yv instanceof ArrayBuffer
          ? new Uint8Array(yv)
          : new Uint8Array(yv.buffer, yv.byteOffset, yv.byteLength);
      return Buffer.compare(xb, yb) === 0 ? undefined : `${path}: bytes differ`;
    }
    const xk = Object.keys(x);
    const yk = Object.keys(yo);
    if (xk.join("\u0000") !== yk.join("\u0000"))
      return `${path}: keys ${JSON.stringify(xk)} vs ${JSON.stringify(yk)}`;
    for (const k of xk) {
      const xd = Object.getOwnPropertyDescriptor(x, k)!;
      const yd = Object.getOwnPropertyDescriptor(yo, k)!;
      if (!("value" in yd)) return `${path}.${k}: not a data property`;
      const d = cmp("value" in xd ? xd.value : (x as Record<string, unknown>)[k], yd.value, `${path}.${k}`);
      if (d) return d;
    }
    return undefined;
  };
  return cmp(a, b, "state");
}

// ---- classes used across tests ------------------------------------------------------------------------

export class Point {
  constructor(
    public x: number,
    public y: number,
  ) {}
  norm(): number {
    return Math.hypot(this.x, this.y);
  }
}

/** Has a prototype accessor whose name is also an own property: decoding must not run the setter. */
export class Account {
  static constructed = 0;
  owner: string;
  balance: bigint;
  constructor(owner: string, balance: bigint) {
    Account.constructed++;
    this.owner = owner;
    this.balance = balance;
  }
  get label(): string {
    return `${this.owner}:${this.balance}`;
  }
  set label(_v: string) {
    throw new Error("setter must not run during decode");
  }
}

export class Node2 {
  next: Node2 | null = null;
  constructor(public value: unknown) {}
}

/** Overrides hasOwnProperty and has an enumerable prototype property: neither may leak into the state. */
export class Quirky {
  a = 1;
  hasOwnProperty(): boolean {
    return true;
  }
}
(Quirky.prototype as unknown as Record<string, unknown>).inherited = 5;

export class Unregistered {
  a = 1;
}

export function testRegistry(): ClassRegistry {
  const r = new ClassRegistry();
  r.register(Point);
  r.register(Account);
  r.register(Node2, "Node");
  r.register(Quirky);
  return r;
}

export interface Formats {
  readonly json: StateSerializer;
  readonly msgpack: StateSerializer;
}

export function serializers(registry: ClassRegistry = testRegistry()): Formats {
  return { json: createJsonSerializer({ registry }), msgpack: createMsgpackSerializer({ registry }) };
}

export function concat(chunks: Iterable<Uint8Array>): Uint8Array {
  return Buffer.concat([...chunks]);
}

/** Re-cuts `bytes` at the given offsets (sorted, deduplicated, clamped), including empty pieces. */
export function cut(bytes: Uint8Array, offsets: readonly number[]): Uint8Array[] {
  const points = [...new Set(offsets.map((o) => Math.max(0, Math.min(bytes.length, o))))].sort(
    (a, b) => a - b,
  );
  const out: Uint8Array[] = [];
  let at = 0;
  for (const p of points) {
    out.push(bytes.subarray(at, p));
    at = p;
  }
  out.push(bytes.subarray(at));
  return out;
}
