import {
  describe,
  isAwkwardKey,
  isWellFormed,
  Kind,
  kindOf,
  MAX_DEPTH,
  Unserializable,
  unsupportedHint,
  withSegment,
} from "./kinds.js";
import type { ClassRegistry } from "./registry.js";

/**
 * What one walk over the state finds out before any byte is written:
 *
 * - every value is supported (else `NotSerializableError` with a path, and nothing has been emitted yet);
 * - which objects are reached more than once (shared references and cycles), so the encoders can write
 *   them once and refer back to them;
 * - for MessagePack: whether anything needs the slow, transforming path (see msgpack.ts);
 * - for streaming: a size estimate per object, used to decide what to split into frames.
 *
 * Extra memory: one Map entry per object of the state (the identity table), ~50–80 bytes each.
 */
export interface Plan {
  /** Objects reached more than once; each is written once and referenced by id afterwards. */
  readonly shared: ReadonlySet<object>;
  /** The state holds -0, a string or key with a lone surrogate, or a "__proto__" key. */
  readonly awkward: boolean;
  /**
   * A shared object is a plain object, array or Map: msgpackr writes those itself, without asking our
   * extensions, so MessagePack must take the transforming path to write references to them.
   */
  readonly sharedNative: boolean;
  /** Estimated encoded size per object; only when asked for (streaming). */
  readonly sizes: ReadonlyMap<object, number> | undefined;
}

export interface PlanOptions {
  readonly registry: ClassRegistry;
  /** Collect `sizes`. */
  readonly sizes: boolean;
  /** Look for values MessagePack cannot hold natively (sets `awkward`). */
  readonly awkward: boolean;
}

/** Rough encoded sizes; only used to cut streams into frames of about the right size. */
export const REF_SIZE = 8;
export const estimateBinary = (byteLength: number): number => byteLength + 8;

export function makePlan(value: unknown, options: PlanOptions): Plan {
  const walker = new PlanWalker(options);
  try {
    walker.visit(value, 0);
  } catch (e) {
    throw (e instanceof Unserializable ? e : withRoot(e)).toError();
  }
  return {
    shared: walker.shared,
    awkward: walker.awkward,
    sharedNative: walker.sharedNative,
    sizes: walker.sizes,
  };
}

function withRoot(e: unknown): Unserializable {
  // Errors from the root value itself (a root getter cannot exist, but a proxy's traps can throw).
  const u = withSegment(e, { kind: "index", index: 0 });
  u.segments.pop();
  return u;
}

class PlanWalker {
  /** Identity table: every object met so far. */
  readonly #seen = new Set<object>();
  /** Object → estimated size, when streaming. */
  readonly sizes: Map<object, number> | undefined;
  readonly shared = new Set<object>();
  awkward = false;
  sharedNative = false;
  readonly #registry: ClassRegistry;
  readonly #checkAwkward: boolean;

  constructor(options: PlanOptions) {
    this.#registry = options.registry;
    this.#checkAwkward = options.awkward;
    this.sizes = options.sizes ? new Map() : undefined;
  }

  /** Returns the estimated encoded size of `v`. */
  visit(v: unknown, depth: number): number {
    switch (typeof v) {
      case "string":
        if (this.#checkAwkward && !this.awkward && !isWellFormed(v)) this.awkward = true;
        return v.length + 3;
      case "number":
        if (v === 0 && 1 / v < 0) this.awkward = true;
        return 9;
      case "boolean":
      case "undefined":
        return 1;
      case "bigint":
        return 12;
      case "object":
        return v === null ? 1 : this.#object(v, depth);
      default:
        throw new Unserializable("UNSUPPORTED_VALUE", describe(v), unsupportedHint(v, this.#registry));
    }
  }

  #object(o: object, depth: number): number {
    // One hash operation for the common first visit. Marked before the children are visited, so a cycle
    // back to `o` counts as a second reference.
    const seen = this.#seen;
    const before = seen.size;
    seen.add(o);
    if (seen.size === before) {
      if (!this.sharedNative) {
        const k = kindOf(o, this.#registry);
        if (k === Kind.PLAIN || k === Kind.ARRAY || k === Kind.MAP) this.sharedNative = true;
      }
      this.shared.add(o);
      return REF_SIZE;
    }
    if (depth >= MAX_DEPTH) {
      throw new Unserializable(
        "TOO_DEEP",
        "deeply nested value",
        `nesting is limited to ${MAX_DEPTH} levels`,
      );
    }
    const d = depth + 1;
    let size = 2;
    switch (kindOf(o, this.#registry)) {
      case Kind.PLAIN:
      case Kind.CLASS:
      case Kind.NULL_PROTO:
        size += this.#props(o, d);
        break;
      case Kind.ARRAY: {
        const a = o as unknown[];
        for (let i = 0; i < a.length; i++) {
          try {
            size += this.visit(a[i], d) + 1;
          } catch (e) {
            throw withSegment(e, { kind: "index", index: i });
          }
        }
        break;
      }
      case Kind.MAP: {
        // forEach, not for…of: no [key, value] array per entry.
        let i = 0;
        (o as Map<unknown, unknown>).forEach((v, k) => {
          try {
            size += this.visit(k, d);
          } catch (e) {
            throw withSegment(e, { kind: "mapKey", index: i });
          }
          try {
            size += this.visit(v, d) + 2;
          } catch (e) {
            throw withSegment(e, { kind: "mapValue", key: k });
          }
          i++;
        });
        break;
      }
      case Kind.SET: {
        let i = 0;
        (o as Set<unknown>).forEach((v) => {
          try {
            size += this.visit(v, d) + 1;
          } catch (e) {
            throw withSegment(e, { kind: "setElement", index: i });
          }
          i++;
        });
        break;
      }
      case Kind.DATE:
        size = 30;
        break;
      case Kind.BINARY:
        size = estimateBinary(o instanceof ArrayBuffer ? o.byteLength : (o as ArrayBufferView).byteLength);
        break;
      default:
        throw new Unserializable("UNSUPPORTED_VALUE", describe(o), unsupportedHint(o, this.#registry));
    }
    this.sizes?.set(o, size);
    return size;
  }

  /** Own enumerable string-keyed properties, as `Object.keys` lists them (symbol keys are not state). */
  #props(o: object, depth: number): number {
    const rec = o as Record<string, unknown>;
    const keys = Object.keys(o);
    let size = 0;
    const checkKeys = this.#checkAwkward && !this.awkward;
    for (let i = 0; i < keys.length; i++) {
      const k = keys[i]!;
      if (checkKeys && !this.awkward && isAwkwardKey(k)) this.awkward = true;
      try {
        size += this.visit(rec[k], depth) + k.length + 3;
      } catch (e) {
        throw withSegment(e, { kind: "prop", key: k });
      }
    }
    return size;
  }
}
