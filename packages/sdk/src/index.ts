export { NotSerializableError, registerClass } from "@immortal/checkpoint";
export { ImpulseDuringReplayError } from "@immortal/coordinator-client";
export { type AppDefinition, defineApp, type RunningApp } from "./app.js";
export { defaultCodec } from "./codec.js";
export {
  type AnyImmortalType,
  type AsyncProxy,
  type CallOutcome,
  type CallProxy,
  defineImmortal,
  type ForkProxy,
  type Handler,
  type HandlerContext,
  type ImmortalDefinition,
  type ImmortalLogger,
  type ImmortalType,
  type ImpulseProxy,
  methodIdOf,
  type PendingCall,
  RESULT_METHOD_ID,
  type StateOf,
  type UpgradeFrom,
} from "./define.js";
export {
  DefinitionError,
  EnvelopeError,
  ImmortalError,
  NotRunningError,
  RemoteHandlerError,
  UnknownMethodError,
  UpgradeError,
} from "./errors.js";
export { FastEnvelopeError } from "./fast-envelope.js";
export {
  type Codec,
  type DispatchObserver,
  Immortal,
  type ImmortalOptions,
  type InputPosition,
  startImmortal,
} from "./runtime.js";
export { versionOf, versionsOf } from "./upgrade.js";
