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
export { BindingProtocolError } from "./engine/core.js";
export { ImpulseDuringReplayError } from "./engine/outputs.js";
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
export * from "./storage/index.js";
