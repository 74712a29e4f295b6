import { Xxh64, xxh64 } from "@node-rs/xxhash";
import xxhashWasm from "xxhash-wasm";

/**
 * Check bytes: xxHash64 with seed 0 over a record's payload (AMBROSIA's current algorithm).
 *
 * Two maintained implementations, each used where it measured faster on this machine (see README):
 * the WASM one (xxhash-wasm) has a cheaper call for small inputs, the native one (@node-rs/xxhash)
 * hashes large inputs faster. Both are checked against each other in the tests.
 */

/** Inputs up to this many bytes go to the WASM implementation, larger ones to the native one. */
export const SMALL_HASH_THRESHOLD = 1024;

const wasm = await xxhashWasm();

function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** xxHash64 (seed 0) of `bytes`, as an unsigned 64-bit bigint. */
export function checkBytes(bytes: Uint8Array): bigint {
  return bytes.length <= SMALL_HASH_THRESHOLD ? wasm.h64Raw(bytes, 0n) : xxh64(asBuffer(bytes), 0n);
}

/** xxHash64 via the native implementation only (for benchmarks and cross-checks). */
export function checkBytesNative(bytes: Uint8Array): bigint {
  return xxh64(asBuffer(bytes), 0n);
}

/** xxHash64 via the WASM implementation only (for benchmarks and cross-checks). */
export function checkBytesWasm(bytes: Uint8Array): bigint {
  return wasm.h64Raw(bytes, 0n);
}

/** Incremental xxHash64 for payloads that arrive or are written in pieces (equals the one-shot hash). */
export interface CheckBytesHasher {
  update(bytes: Uint8Array): CheckBytesHasher;
  digest(): bigint;
}

export function createCheckBytesHasher(): CheckBytesHasher {
  const h = new Xxh64(0n);
  const hasher: CheckBytesHasher = {
    update(bytes) {
      h.update(asBuffer(bytes));
      return hasher;
    },
    digest: () => h.digest(),
  };
  return hasher;
}
