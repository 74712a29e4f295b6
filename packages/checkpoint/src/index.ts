export {
  type DecodedCheckpoint,
  decodeEnvelopeHeader,
  ENVELOPE_HEADER_SIZE,
  ENVELOPE_MAGIC,
  ENVELOPE_VERSION,
  type EnvelopeHeader,
  type EnvelopeStream,
  encodeEnvelopeHeader,
  type ReadEnvelopeOptions,
  readEnvelope,
  readEnvelopeStream,
  UNKNOWN_LENGTH,
  type WriteEnvelopeOptions,
  type WriteEnvelopeStreamOptions,
  writeEnvelope,
  writeEnvelopeStream,
} from "./envelope.js";
export {
  CheckpointError,
  type CheckpointFormatCode,
  CheckpointFormatError,
  type DeserializationCode,
  DeserializationError,
  MigrationError,
  type MigrationErrorCode,
  type NotSerializableCode,
  NotSerializableError,
  RegistryError,
  type RegistryErrorCode,
} from "./errors.js";
export { STREAM_MAGIC } from "./framing.js";
export { MAX_DEPTH } from "./kinds.js";
export {
  decodeStreamWithMigrations,
  decodeWithMigrations,
  type MigratedCheckpoint,
  type Migration,
  type MigrationOptions,
  migrate,
} from "./migrations.js";
export {
  type ClassConstructor,
  ClassRegistry,
  defaultRegistry,
  type RegisteredClass,
  registerClass,
} from "./registry.js";
export {
  type ByteSource,
  createJsonSerializer,
  createMsgpackSerializer,
  DEFAULT_SERIALIZERS,
  type DecodeStreamOptions,
  type EncodeStreamOptions,
  jsonSerializer,
  msgpackSerializer,
  type SerializerOptions,
  type StateSerializer,
} from "./serializer.js";
