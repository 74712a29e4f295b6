export {
  CHECKPOINT_MAGIC,
  CheckpointReader,
  CheckpointWriter,
  type CheckpointWriterOptions,
  MIN_CHECKPOINT_SIZE,
} from "./checkpoint.js";
export {
  CheckpointFormatError,
  CheckpointLengthError,
  ChecksumMismatchError,
  ConcurrentAppendError,
  type CorruptionKind,
  DiskFullError,
  errnoCode,
  isDiskFull,
  LogCorruptionError,
  type LogDefect,
  StorageError,
  type StorageErrorCode,
  toStorageError,
} from "./errors.js";
export { type FsOps, nodeFsOps, readFully } from "./fs-ops.js";
export {
  FileInstanceStorage,
  type FileStorageOptions,
  type InstanceStorage,
  openNewestValidCheckpoint,
} from "./instance-storage.js";
export {
  CHECKPOINT_FILE_PREFIX,
  checkpointFileName,
  DIGEST_FILE_PREFIX,
  digestFileName,
  instanceDirectory,
  LOG_FILE_PREFIX,
  logFileName,
  parseStorageFileName,
  type StorageFileKind,
  TEMP_SUFFIX,
} from "./layout.js";
export {
  DEFAULT_MAX_LOG_RECORD_SIZE,
  META_SEQUENCE,
  type RawRecordHeader,
  readRawHeader,
} from "./log-format.js";
export {
  LogScan,
  type LogScanResult,
  type LogTail,
  type ScannedUnit,
  type ScanOptions,
  type ScanResult,
} from "./log-scan.js";
export { type AppendResult, type AppendUnit, LogWriter, type LogWriterOptions } from "./log-writer.js";
