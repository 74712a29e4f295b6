import { CheckpointError } from "./errors.js";

/**
 * Hands incoming checkpoint bytes to the app's loader as an `AsyncIterable<Uint8Array>`. The client pushes
 * chunks as the socket delivers them and watches `buffered`: when the loader falls behind, the client pauses
 * the socket (TCP flow control then stalls the coordinator), so a checkpoint of any size is held only up to
 * the high-water mark, never whole. `onConsume` tells the client when the loader caught up.
 */
export class ChunkQueue implements AsyncIterable<Uint8Array> {
  private chunks: Uint8Array[] = [];
  private head = 0;
  private ended = false;
  private failure: unknown = undefined;
  private abandoned = false;
  private iterated = false;
  private waiter:
    | { resolve: (r: IteratorResult<Uint8Array>) => void; reject: (err: unknown) => void }
    | undefined;
  /** Bytes pushed but not yet handed to the loader. */
  buffered = 0;
  /** Bytes handed to the loader. */
  consumed = 0n;

  constructor(private readonly onConsume: () => void) {}

  push(bytes: Uint8Array): void {
    if (this.ended || this.failure !== undefined || this.abandoned || bytes.length === 0) return;
    const w = this.waiter;
    if (w !== undefined) {
      this.waiter = undefined;
      this.consumed += BigInt(bytes.length);
      w.resolve({ value: bytes, done: false });
      return;
    }
    this.chunks.push(bytes);
    this.buffered += bytes.length;
  }

  end(): void {
    if (this.ended) return;
    this.ended = true;
    if (this.head === this.chunks.length) this.settleWaiter();
  }

  fail(err: unknown): void {
    if (this.failure !== undefined || this.ended) return;
    this.failure = err;
    this.chunks = [];
    this.head = 0;
    this.buffered = 0;
    this.settleWaiter();
  }

  private settleWaiter(): void {
    const w = this.waiter;
    if (w === undefined) return;
    this.waiter = undefined;
    if (this.failure !== undefined) w.reject(this.failure);
    else w.resolve({ value: undefined, done: true });
  }

  [Symbol.asyncIterator](): AsyncIterator<Uint8Array> {
    // One pass only: the bytes are not kept, so a second iteration could not see them.
    if (this.iterated) throw new CheckpointError("load", "the checkpoint stream can be iterated only once");
    this.iterated = true;
    return {
      next: () => this.next(),
      return: () => {
        this.abandoned = true;
        this.chunks = [];
        this.head = 0;
        this.buffered = 0;
        this.onConsume();
        return Promise.resolve({ value: undefined, done: true });
      },
    };
  }

  private next(): Promise<IteratorResult<Uint8Array>> {
    if (this.head < this.chunks.length) {
      const c = this.chunks[this.head++]!;
      if (this.head === this.chunks.length) {
        this.chunks = [];
        this.head = 0;
      }
      this.buffered -= c.length;
      this.consumed += BigInt(c.length);
      this.onConsume();
      return Promise.resolve({ value: c, done: false });
    }
    if (this.failure !== undefined) return Promise.reject(this.failure);
    if (this.ended || this.abandoned) return Promise.resolve({ value: undefined, done: true });
    if (this.waiter !== undefined)
      return Promise.reject(new Error("overlapping next() on a checkpoint stream"));
    this.onConsume();
    return new Promise((resolve, reject) => {
      this.waiter = { resolve, reject };
    });
  }
}
