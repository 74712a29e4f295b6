export {
  type CheckpointChunk,
  type CheckpointEnd,
  type ForwardingStreamEvent,
  type LogRecord,
  MessageDecoder,
  type MessageDecoderOptions,
  type MessageStreamEvent,
  type RawBatch,
  RecordDecoder,
  type RecordDecoderOptions,
  type RecordStreamEvent,
} from "./decoder.js";
export { LogError, type LogErrorCode } from "./errors.js";
export {
  type ByteSource,
  type ReadEventsOptions,
  type ReadForwardingOptions,
  type ReadMessagesOptions,
  type ReadRecordsOptions,
  readEvents,
} from "./reader.js";
export { drained, type WriteCheckpointOptions, writeBuffers, writeCheckpoint } from "./stream.js";
export { MessageWriter, type MessageWriterOptions, type RecordIdentity } from "./writer.js";
