import { msgpackSerializer } from "@immortal/checkpoint";
import { decodeFast, encodeFast, isFast } from "./fast-envelope.js";
import type { Codec } from "./runtime.js";

/**
 * The SDK's codec for message arguments and state: @immortal/checkpoint's binary format (MessagePack with
 * extensions), so Map, Set, Date, BigInt, typed arrays and registered classes (`registerClass`) come back as
 * what they were, and a value that cannot be checkpointed (a function, an unregistered class) is refused with a
 * `NotSerializableError` naming where it is, instead of being silently changed.
 *
 * Small records of simple values (the envelope of nearly every message: numbers, strings, booleans, byte
 * arrays) take a direct binary layout instead (see fast-envelope.ts): the same value comes back, at a fraction
 * of the cost. Bytes in either layout decode, so logs written before the fast path still replay.
 */
export function defaultCodec(): Codec {
  return {
    encode: (value) => encodeFast(value) ?? msgpackSerializer.encode(value),
    decode: (bytes) => (isFast(bytes) ? decodeFast(bytes) : msgpackSerializer.decode(bytes)),
  };
}
