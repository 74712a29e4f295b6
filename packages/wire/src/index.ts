export { WireError, type WireErrorCode } from "./errors.js";
export {
  MAX_ZIGZAG_INT_BYTES,
  MAX_ZIGZAG_LONG_BYTES,
  NEED_MORE,
  type VarintResult,
  readZigZagInt,
  readZigZagLong,
  tryReadZigZagInt,
  tryReadZigZagLong,
  writeZigZagInt,
  writeZigZagLong,
  zigZagIntSize,
  zigZagLongSize,
} from "./varint.js";
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
  SMALL_HASH_THRESHOLD,
  checkBytes,
  checkBytesNative,
  checkBytesWasm,
  createCheckBytesHasher,
} from "./hash.js";
export * from "./messages.js";
export * from "./record.js";
export { readUtf8, utf8Length, writeUtf8 } from "./utf8.js";
