import { readUtf8, utf8Length, writeUtf8 } from "@immortal/wire";

/** A coordinator-internal encoding problem (our own formats: checkpoint IC state, meta records, link frames). */
export class FormatError extends Error {
  override readonly name = "FormatError";
}

/**
 * Growable little-endian writer for the coordinator's own binary formats. Numbers are written as doubles
 * where they are safe integers (sequence numbers), which keeps every field fixed-size and exact.
 */
export class BinWriter {
  private buf: Buffer;
  private pos = 0;
  constructor(initial = 256) {
    this.buf = Buffer.allocUnsafe(initial);
  }
  private room(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    const next = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.pos + n));
    this.buf.copy(next, 0, 0, this.pos);
    this.buf = next;
  }
  u8(v: number): this {
    this.room(1);
    this.buf[this.pos++] = v;
    return this;
  }
  u32(v: number): this {
    this.room(4);
    this.buf.writeUInt32LE(v, this.pos);
    this.pos += 4;
    return this;
  }
  i32(v: number): this {
    this.room(4);
    this.buf.writeInt32LE(v, this.pos);
    this.pos += 4;
    return this;
  }
  num(v: number): this {
    if (!Number.isSafeInteger(v)) throw new FormatError(`${v} is not a safe integer`);
    this.room(8);
    this.buf.writeDoubleLE(v, this.pos);
    this.pos += 8;
    return this;
  }
  str(s: string): this {
    const n = utf8Length(s);
    this.u32(n);
    this.room(n);
    this.pos = writeUtf8(this.buf, this.pos, s, n);
    return this;
  }
  bytes(b: Uint8Array): this {
    this.u32(b.length);
    this.raw(b);
    return this;
  }
  raw(b: Uint8Array): this {
    this.room(b.length);
    this.buf.set(b, this.pos);
    this.pos += b.length;
    return this;
  }
  get length(): number {
    return this.pos;
  }
  /** The bytes written so far (a view; the writer must not be reused afterwards). */
  finish(): Buffer {
    return this.buf.subarray(0, this.pos);
  }
}

export class BinReader {
  private pos: number;
  /** Made once: a DataView per field read was 16 % of a receiving coordinator's time with 64-byte RPCs. */
  private readonly view: DataView;
  constructor(
    private readonly buf: Uint8Array,
    start = 0,
    private readonly end = buf.length,
  ) {
    this.pos = start;
    this.view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  }
  private need(n: number, what: string): void {
    if (this.pos + n > this.end) throw new FormatError(`truncated ${what} at byte ${this.pos}`);
  }
  u8(): number {
    this.need(1, "byte");
    return this.buf[this.pos++]!;
  }
  u32(): number {
    this.need(4, "u32");
    const v = this.view.getUint32(this.pos, true);
    this.pos += 4;
    return v;
  }
  i32(): number {
    this.need(4, "i32");
    const v = this.view.getInt32(this.pos, true);
    this.pos += 4;
    return v;
  }
  num(): number {
    this.need(8, "number");
    const v = this.view.getFloat64(this.pos, true);
    this.pos += 8;
    if (!Number.isSafeInteger(v))
      throw new FormatError(`field at byte ${this.pos - 8} is not a safe integer`);
    return v;
  }
  str(): string {
    const n = this.u32();
    this.need(n, "string");
    const s = readUtf8(this.buf, this.pos, this.pos + n);
    this.pos += n;
    return s;
  }
  bytes(): Uint8Array {
    const n = this.u32();
    this.need(n, "bytes");
    const b = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return b;
  }
  get done(): boolean {
    return this.pos >= this.end;
  }
  get offset(): number {
    return this.pos;
  }
}
