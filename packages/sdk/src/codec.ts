import { msgpackSerializer } from "@immortal/checkpoint";
import type { Codec } from "./runtime.js";

/**
 * The SDK's codec for message arguments and state: @immortal/checkpoint's binary format (MessagePack with
 * extensions), so Map, Set, Date, BigInt, typed arrays and registered classes (`registerClass`) come back as
 * what they were, and a value that cannot be checkpointed (a function, an unregistered class) is refused with a
 * `NotSerializableError` naming where it is, instead of being silently changed.
 */
export function defaultCodec(): Codec {
  return {
    encode: (value) => msgpackSerializer.encode(value),
    decode: (bytes) => msgpackSerializer.decode(bytes),
  };
}
