import { RegistryError } from "./errors.js";

/**
 * Anything `class X {}` produces, including abstract classes. (A class with a `private constructor` is not
 * assignable here; give it a `protected` one.)
 */
// biome-ignore lint/suspicious/noExplicitAny: `any[]` is the only parameter type every constructor accepts.
export type ClassConstructor = abstract new (...args: any[]) => unknown;

/** One registered class, as the codecs see it. */
export interface RegisteredClass {
  readonly name: string;
  readonly ctor: ClassConstructor;
  readonly prototype: object;
}

const TypedArrayPrototype = Object.getPrototypeOf(Uint8Array.prototype) as object;

/**
 * Built-ins whose instances keep their data in internal slots: restoring "own properties on
 * `Object.create(prototype)`" would produce a broken object (a Map subclass with no map inside), so classes
 * deriving from them are refused at registration rather than failing on first use.
 */
const SLOTTED_PROTOTYPES: ReadonlyMap<object, string> = new Map<object, string>([
  [Array.prototype, "Array"],
  [Map.prototype, "Map"],
  [Set.prototype, "Set"],
  [WeakMap.prototype, "WeakMap"],
  [WeakSet.prototype, "WeakSet"],
  [Date.prototype, "Date"],
  [RegExp.prototype, "RegExp"],
  [Error.prototype, "Error"],
  [Promise.prototype, "Promise"],
  [ArrayBuffer.prototype, "ArrayBuffer"],
  [SharedArrayBuffer.prototype, "SharedArrayBuffer"],
  [DataView.prototype, "DataView"],
  [TypedArrayPrototype, "TypedArray"],
  [Number.prototype, "Number"],
  [String.prototype, "String"],
  [Boolean.prototype, "Boolean"],
  [Function.prototype, "Function"],
]);

/**
 * Maps class names to prototypes and back. The name is what a checkpoint stores, so it must stay stable
 * across deployments: pass it explicitly when your build minifies class names.
 */
export class ClassRegistry {
  readonly #byName = new Map<string, RegisteredClass>();
  readonly #byPrototype = new Map<object, RegisteredClass>();
  /** Per prototype: own-property names that plain assignment would not create (see `unsafeKeys`). */
  readonly #unsafeKeys = new Map<object, ReadonlySet<string>>();

  /**
   * Registers `ctor` under `name` (default `ctor.name`). Instances are written as their own enumerable
   * string-keyed properties and restored with `Object.create(ctor.prototype)` plus those properties: the
   * constructor is not called. Registering the same class under the same name again is a no-op.
   */
  register(ctor: ClassConstructor, name: string = ctor.name): void {
    if (typeof ctor !== "function" || typeof ctor.prototype !== "object" || ctor.prototype === null) {
      throw new RegistryError("BAD_CLASS", "registerClass expects a class (a constructor with a prototype)");
    }
    if (typeof name !== "string" || name.length === 0) {
      throw new RegistryError(
        "BAD_NAME",
        "the class has no name (anonymous class?): pass one, e.g. registerClass(C, 'Order')",
      );
    }
    const prototype = ctor.prototype as object;
    if (prototype === Object.prototype) {
      throw new RegistryError("BAD_CLASS", "Object itself needs no registration: plain objects are built in");
    }
    for (let p: object | null = prototype; p !== null; p = Object.getPrototypeOf(p) as object | null) {
      const builtin = SLOTTED_PROTOTYPES.get(p);
      if (builtin !== undefined) {
        throw new RegistryError(
          "BAD_CLASS",
          `class ${name} derives from ${builtin}, whose data lives in internal slots that own properties cannot ` +
            `restore; hold a ${builtin} in a property instead of extending it`,
        );
      }
    }
    const byName = this.#byName.get(name);
    const byProto = this.#byPrototype.get(prototype);
    if (byName !== undefined && byName === byProto) return;
    if (byName !== undefined) {
      throw new RegistryError("BAD_NAME", `the name "${name}" is already registered for another class`);
    }
    if (byProto !== undefined) {
      throw new RegistryError("BAD_CLASS", `class ${name} is already registered as "${byProto.name}"`);
    }
    const entry: RegisteredClass = { name, ctor, prototype };
    this.#byName.set(name, entry);
    this.#byPrototype.set(prototype, entry);
  }

  /** The registration for instances whose prototype is exactly `prototype` (subclasses need their own). */
  byPrototype(prototype: object): RegisteredClass | undefined {
    return this.#byPrototype.get(prototype);
  }

  byName(name: string): RegisteredClass | undefined {
    return this.#byName.get(name);
  }

  /** Registered classes, in registration order. */
  get classes(): readonly RegisteredClass[] {
    return [...this.#byName.values()];
  }

  /**
   * Keys that `obj[key] = v` would not turn into an own data property of an object with this prototype:
   * accessors (a setter would run, a getter-only one throws) and read-only properties anywhere on the chain,
   * including `__proto__` from Object.prototype. Decoders use `Object.defineProperty` for exactly these keys
   * and the much faster plain assignment for all others. Computed once per prototype, on first decode.
   */
  unsafeKeys(prototype: object): ReadonlySet<string> {
    let keys = this.#unsafeKeys.get(prototype);
    if (keys === undefined) {
      keys = unsafeKeysOf(prototype);
      this.#unsafeKeys.set(prototype, keys);
    }
    return keys;
  }
}

function unsafeKeysOf(prototype: object): ReadonlySet<string> {
  const keys = new Set<string>();
  for (let p: object | null = prototype; p !== null; p = Object.getPrototypeOf(p) as object | null) {
    for (const key of Object.getOwnPropertyNames(p)) {
      const d = Object.getOwnPropertyDescriptor(p, key);
      if (d !== undefined && (d.get !== undefined || d.set !== undefined || d.writable === false))
        keys.add(key);
    }
  }
  return keys;
}

/** The registry used by `registerClass` and by the default serializers. */
export const defaultRegistry: ClassRegistry = new ClassRegistry();

/**
 * Registers a class with the default registry so its instances keep their prototype through a checkpoint.
 * See `ClassRegistry.register`.
 */
export function registerClass(ctor: ClassConstructor, name?: string): void {
  defaultRegistry.register(ctor, name);
}
