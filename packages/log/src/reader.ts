import {
  type ForwardingStreamEvent,
  MessageDecoder,
  type MessageDecoderOptions,
  type MessageStreamEvent,
  RecordDecoder,
  type RecordDecoderOptions,
  type RecordStreamEvent,
} from "./decoder.js";
import { LogError } from "./errors.js";

export type ReadMessagesOptions = {
  readonly mode: "messages";
  readonly rawBatches?: false;
} & MessageDecoderOptions;
/** Messages mode with RPCBatch frames passed on undecoded (see `RawBatch`). */
export type ReadForwardingOptions = {
  readonly mode: "messages";
  readonly rawBatches: true;
} & MessageDecoderOptions;
export type ReadRecordsOptions = { readonly mode: "records" } & RecordDecoderOptions;
export type ReadEventsOptions = ReadMessagesOptions | ReadForwardingOptions | ReadRecordsOptions;

/** Anything that yields byte chunks: a Node `Readable` (e.g. a `net.Socket`), a file stream, a generator. */
export type ByteSource = AsyncIterable<Uint8Array> | Iterable<Uint8Array>;

interface Feed {
  push(chunk: Uint8Array): void;
  end(): void;
}

/**
 * Pull-based event iterator. It asks its source for the next chunk only when every event of the previous
 * chunk has been consumed, so a slow consumer stops reading: a Readable's buffer fills to its high-water
 * mark and pauses the socket, and TCP flow control pushes back on the sender.
 */
class EventReader<E> implements AsyncIterableIterator<E> {
  private queue: E[] = [];
  private head = 0;
  private readonly decoder: Feed;
  private readonly source: AsyncIterator<Uint8Array> | Iterator<Uint8Array>;
  private finished = false;
  private failure: unknown = undefined;
  /** The pull in progress, so overlapping `next()` calls are served in order. */
  private pulling: Promise<IteratorResult<E>> | undefined;

  constructor(source: ByteSource, makeDecoder: (onEvent: (event: E) => void) => Feed) {
    this.decoder = makeDecoder((event) => {
      this.queue.push(event);
    });
    this.source = Symbol.asyncIterator in source ? source[Symbol.asyncIterator]() : source[Symbol.iterator]();
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  next(): Promise<IteratorResult<E>> {
    if (this.pulling !== undefined) {
      // Overlapping calls (for-await never makes them) wait for the pull in progress, keeping order.
      const again = (): Promise<IteratorResult<E>> => this.next();
      return this.pulling.then(again, again);
    }
    if (this.head < this.queue.length) return Promise.resolve({ value: this.shift(), done: false });
    const pulling = this.pull().finally(() => {
      this.pulling = undefined;
    });
    this.pulling = pulling;
    return pulling;
  }

  /** Stops reading and releases the source (a Readable's iterator destroys the stream). */
  async return(): Promise<IteratorResult<E>> {
    this.finished = true;
    this.queue = [];
    this.head = 0;
    await this.source.return?.();
    return { value: undefined, done: true };
  }

  private shift(): E {
    const event = this.queue[this.head++]!;
    if (this.head === this.queue.length) {
      this.queue.length = 0;
      this.head = 0;
    }
    return event;
  }

  private async pull(): Promise<IteratorResult<E>> {
    for (;;) {
      if (this.head < this.queue.length) return { value: this.shift(), done: false };
      if (this.failure !== undefined) throw this.failure;
      if (this.finished) return { value: undefined, done: true };
      let r: IteratorResult<Uint8Array>;
      try {
        r = await this.source.next();
      } catch (err) {
        // A source failure (e.g. ECONNRESET) ends the stream like a decoding error: rethrown on every call.
        this.failure = err;
        this.finished = true;
        continue;
      }
      if (r.done) {
        this.finished = true;
        try {
          this.decoder.end();
        } catch (err) {
          this.failure = err;
        }
        continue;
      }
      const chunk: unknown = r.value;
      try {
        if (!(chunk instanceof Uint8Array)) {
          throw new LogError("NOT_BYTES", `source yielded ${typeof chunk}, not bytes (is an encoding set?)`);
        }
        this.decoder.push(chunk);
      } catch (err) {
        // Events decoded before the error are still delivered; the error comes after them.
        this.failure = err;
        this.finished = true;
        await this.source.return?.();
      }
    }
  }
}

/**
 * Reads decoded events from a byte source, honouring back-pressure (see `EventReader`). Throws (rejects
 * `next()`) with the first `WireError` after delivering the events before it, and again on every later
 * call; a truncated end of input is a `TRUNCATED` `WireError`. Breaking out of a `for await` loop closes
 * the source. The push API (`MessageDecoder` / `RecordDecoder`) is several times faster: it costs no
 * promise per event.
 */
export function readEvents(
  source: ByteSource,
  options: ReadRecordsOptions,
): AsyncIterableIterator<RecordStreamEvent>;
export function readEvents(
  source: ByteSource,
  options: ReadForwardingOptions,
): AsyncIterableIterator<ForwardingStreamEvent>;
export function readEvents(
  source: ByteSource,
  options?: ReadMessagesOptions,
): AsyncIterableIterator<MessageStreamEvent>;
export function readEvents(
  source: ByteSource,
  options: ReadEventsOptions = { mode: "messages" },
): AsyncIterableIterator<ForwardingStreamEvent | RecordStreamEvent> {
  if (options.mode === "records") {
    return new EventReader<RecordStreamEvent>(source, (onEvent) => new RecordDecoder(onEvent, options));
  }
  return new EventReader<ForwardingStreamEvent>(
    source,
    (onEvent) => new MessageDecoder<ForwardingStreamEvent>(onEvent, options),
  );
}
