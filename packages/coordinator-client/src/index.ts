// Public surface of @immortal/coordinator-client: the binding's protocol engine (the layer under the SDK).
export { CoordinatorClient } from "./client.js";
export {
  decodeEnvelopeHeader,
  ENVELOPE_HEADER_SIZE,
  ENVELOPE_VERSION,
  encodeEnvelopeHeader,
} from "./envelope.js";
export {
  CheckpointError,
  CheckpointFormatError,
  ClientClosedError,
  ConnectError,
  CoordinatorClientError,
  DisconnectedError,
  HandlerError,
  ImpulseDuringReplayError,
  ProtocolError,
  SequenceGapError,
} from "./errors.js";
export type {
  CheckpointInfo,
  ChunkSource,
  ClientApp,
  ClientEvents,
  ClientState,
  CloseInfo,
  CoordinatorClientOptions,
  DispatchedMessage,
  DispatchInfo,
  SavedState,
  StateSnapshot,
} from "./types.js";
