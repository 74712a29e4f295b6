import { WireError } from "./errors.js";

// ignoreBOM: a name that starts with U+FEFF is data, and must round-trip unchanged.
const decoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
const encoder = new TextEncoder();

/** Byte length of `s` in UTF-8. Instance names are short and ASCII, so that case is a plain loop. */
export function utf8Length(s: string): number {
  const n = s.length;
  for (let i = 0; i < n; i++) {
    if (s.charCodeAt(i) >= 0x80) return Buffer.byteLength(s, "utf8");
  }
  return n;
}

/** Writes `s` as UTF-8 at `offset`; returns the offset after it. The caller sized the room with `utf8Length`. */
export function writeUtf8(buf: Uint8Array, offset: number, s: string, byteLength: number): number {
  if (byteLength === s.length) {
    for (let i = 0; i < byteLength; i++) buf[offset + i] = s.charCodeAt(i);
    return offset + byteLength;
  }
  encoder.encodeInto(s, buf.subarray(offset, offset + byteLength));
  return offset + byteLength;
}

/** Decodes UTF-8 bytes strictly: invalid sequences are a `MALFORMED` error, never replacement characters. */
export function readUtf8(buf: Uint8Array, start: number, end: number): string {
  if (end - start <= 32) {
    let ascii = "";
    let i = start;
    for (; i < end; i++) {
      const c = buf[i]!;
      if (c >= 0x80) break;
      ascii += String.fromCharCode(c);
    }
    if (i === end) return ascii;
  }
  try {
    return decoder.decode(buf.subarray(start, end));
  } catch {
    throw new WireError("MALFORMED", "invalid UTF-8 in a name", start);
  }
}
