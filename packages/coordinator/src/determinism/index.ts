// Determinism checking: the live coordinator records a digest of every outgoing fork; any replay (recovery,
// repro / time travel, an active/active standby) compares what it regenerates and reports the first divergence.
export {
  type CheckerStats,
  DEFAULT_MAX_RECORDED,
  DeterminismChecker,
  type Divergence,
  divergenceHeadline,
  type OutputSummary,
} from "./checker.js";
export { decodeDigestFile, type RecordedOutput } from "./format.js";
export { DEFAULT_SAMPLE_BYTES, DigestRecorder, type RecorderStats } from "./recorder.js";
export {
  type DeterminismHooks,
  type DeterminismStats,
  reportDivergence,
  SessionDeterminism,
  type SessionDeterminismOptions,
} from "./session.js";
