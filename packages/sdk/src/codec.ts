import { Packr } from "msgpackr";
import type { Codec } from "./runtime.js";

/**
 * The SDK's codec for message arguments and state: MessagePack via msgpackr, with structured-clone semantics
 * (Map, Set, Date, BigInt, typed arrays, shared and circular references survive; functions do not).
 */
export function defaultCodec(): Codec {
  const packr = new Packr({
    structuredClone: true,
    useRecords: false,
    int64AsType: "bigint",
    moreTypes: true,
  });
  return {
    encode: (value) => packr.pack(value),
    decode: (bytes) => packr.unpack(bytes),
  };
}
