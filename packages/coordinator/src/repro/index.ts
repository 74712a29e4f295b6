// Repro / time-travel mode (AMBROSIA's DebugInstance): a read-only replay from checkpoint N for a binding.
export {
  CheckpointNotFoundError,
  ReproCoordinator,
  type ReproOptions,
  type ReproResult,
} from "./repro.js";
export { reproSummary, runDebugInstance, TESTING_UPGRADE_MESSAGE } from "./run-debug.js";
