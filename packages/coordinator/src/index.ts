// Public surface of @immortal/coordinator: the coordinator itself (in-process or as the ImmortalCoordinator
// executable), the registry it resolves instances through, and the storage interface behind its durable log.
export {
  Coordinator,
  type CoordinatorConfig,
  type CoordinatorLaunchOptions,
  type DebugLaunchOptions,
  FatalError,
  runCoordinator,
  runDebugInstance,
  startCoordinator,
} from "./coordinator.js";
export * from "./determinism/index.js";
export { BindingProtocolError } from "./engine/core.js";
export { ImpulseDuringReplayError } from "./engine/outputs.js";
export { UPGRADE_MARKER } from "./engine/upgrade.js";
export {
  startWhatIfReplay,
  type WhatIfReplay,
  type WhatIfReplayOptions,
  type WhatIfReplayResult,
} from "./engine/whatif.js";
export * from "./registry/index.js";
export {
  FileLogLease,
  LeaseLostError,
  type LeaseTiming,
  type LogLease,
  leaseTiming,
  readSeal,
  sealPath,
} from "./replication/index.js";
export {
  CheckpointNotFoundError,
  ReproCoordinator,
  type ReproOptions,
  type ReproResult,
  reproSummary,
  TESTING_UPGRADE_MESSAGE,
} from "./repro/index.js";
export * from "./storage/index.js";
