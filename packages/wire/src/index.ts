export { WireError, type WireErrorCode } from "./errors.js";
export {
  readIntFixed,
  readLongFixed,
  readLongFixedNumber,
  readULongFixed,
  writeIntFixed,
  writeLongFixed,
  writeLongFixedNumber,
} from "./fixed.js";
export {
  type CheckBytesHasher,
  checkBytes,
  checkBytesNative,
  checkBytesWasm,
  createCheckBytesHasher,
  SMALL_HASH_THRESHOLD,
} from "./hash.js";
export * from "./messages.js";
export * from "./record.js";
export { readUtf8, utf8Length, writeUtf8 } from "./utf8.js";
export {
  MAX_ZIGZAG_INT_BYTES,
  MAX_ZIGZAG_LONG_BYTES,
  NEED_MORE,
  readZigZagInt,
  readZigZagLong,
  tryReadZigZagInt,
  tryReadZigZagLong,
  type VarintResult,
  writeZigZagInt,
  writeZigZagLong,
  zigZagIntSize,
  zigZagLongSize,
} from "./varint.js";
