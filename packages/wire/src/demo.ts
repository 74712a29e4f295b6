/**
 * The codec demo: decodes a first-start exchange between a binding and its coordinator, byte by byte,
 * exactly as client-protocol.md lays it out (§Start-up sequences, first start):
 *   IC → LB  record (seq −1): TakeBecomingPrimaryCheckpoint
 *   LB → IC  InitialMessage, then Checkpoint(length) + `length` raw bytes
 *   IC → LB  record (seq 0): the InitialMessage echoed back as the first logged record
 *   LB → IC  a self-call Fork and an AttachTo + RPC to "server"
 * The bytes are written out in hex below (committer ID 0x2a3b4c5d); the check bytes are xxHash64 values
 * written in as literals, so the demo shows the decoder accepting independently stated bytes.
 */
import {
  decodeMessage,
  decodeRecord,
  type Message,
  MessageType,
  RECORD_HEADER_SIZE,
  WireError,
} from "./index.js";

const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ""), "hex");

// IC → LB: 24-byte header (committer, length 26, xxHash64 of `02 0b`, sequence −1) + `[size 1][type 11]`.
const icToLb1 = hex("5d4c3b2a 1a000000 c7f179c2cb842dda ffffffffffffffff 02 0b");
// LB → IC: InitialMessage "hello" (size 6 → zigzag 0x0c), Checkpoint (size 2, length 4 → 0x08), 4 raw bytes.
const lbToIc = hex("0c 09 68656c6c6f   04 08 08   de ad be ef");
// IC → LB: record 0 (length 24 + 7) carrying the InitialMessage.
const icToLb2 = hex("5d4c3b2a 1f000000 30c1d3e60d8e4285 0000000000000000 0c 09 68656c6c6f");
// LB → IC: self-call Fork (dest length 0, method 3, args 01 02), AttachTo "server", RPC to "server" (method 1, Impulse).
const lbToIc2 = hex("0e 00 00 00 06 01 0102 0e 01 736572766572 18 00 0c 736572766572 00 02 02 ff");

const names: Record<number, string> = Object.fromEntries(Object.entries(MessageType).map(([k, v]) => [v, k]));

const describe = (m: Message): string => {
  const { type, ...rest } = m;
  const fields = Object.entries(rest).map(([k, v]: [string, unknown]) => {
    const shown =
      typeof v === "bigint"
        ? `${v}n`
        : v instanceof Uint8Array
          ? `<${Buffer.from(v).toString("hex")}>`
          : JSON.stringify(v);
    return `${k}=${shown}`;
  });
  return `${names[type] ?? type} ${fields.join(" ")}`;
};

function showRecord(label: string, bytes: Buffer): void {
  const r = decodeRecord(bytes);
  console.log(
    `${label}: record seq ${r.header.sequence}, committer 0x${(r.header.committerId >>> 0).toString(16)}, ` +
      `${r.header.length} bytes (${RECORD_HEADER_SIZE}-byte header), check bytes 0x${r.header.checkBytes.toString(16)} verified`,
  );
  for (const m of r.messages) console.log(`    ${describe(m)}`);
}

function showMessages(label: string, bytes: Buffer): void {
  console.log(`${label}:`);
  let p = 0;
  while (p < bytes.length) {
    const { message, next } = decodeMessage(bytes, p, "outgoing");
    console.log(`    ${describe(message)}`);
    p = next;
    if (message.type === 8) {
      const raw = bytes.subarray(p, p + Number(message.length));
      console.log(`    + ${raw.length} raw checkpoint bytes outside the framing: ${raw.toString("hex")}`);
      p += raw.length;
    }
  }
}

console.log("First start, as a binding and its Immortal Coordinator exchange it:\n");
showRecord("IC → LB", icToLb1);
showMessages("LB → IC", lbToIc);
showRecord("IC → LB", icToLb2);
showMessages("LB → IC", lbToIc2);

// A flipped bit is caught by the check bytes, with a typed error rather than a wrong decode.
const corrupt = Buffer.from(icToLb2);
corrupt[corrupt.length - 1]! ^= 0x01;
try {
  decodeRecord(corrupt);
} catch (e) {
  if (!(e instanceof WireError)) throw e;
  console.log(`\nThe same record with one bit flipped is refused with a typed error:\n    ${e.message}`);
}
