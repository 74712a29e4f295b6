export {
  RegistrationError,
  type RegistrationErrorCode,
  RegistryCorruptError,
  RegistryLockTimeoutError,
  UnknownInstanceError,
} from "./errors.js";
export {
  DEFAULT_REGISTRY_DIRNAME,
  FolderRegistry,
  type FolderRegistryOptions,
  REGISTRY_ENV_VAR,
  type RegistryDirOptions,
  resolveRegistryDir,
} from "./folder-registry.js";
export { type FileLockOptions, withFileLock, writeFileAtomic } from "./fs-atomic.js";
export {
  CREATE_SERVICE_MODES,
  type CreateServiceMode,
  type IcAddress,
  type InstanceMeta,
  type InstanceRegistration,
  type MetaMutator,
  type RegistrationMutator,
  type Registry,
  type ReplicaOverrides,
} from "./types.js";
export {
  checkDistinctPorts,
  createRegistration,
  DEFAULT_IC_HOST,
  DEFAULT_LOG_TRIGGER_SIZE_MB,
  MAX_INSTANCE_NAME_LENGTH,
  MAX_LOG_TRIGGER_SIZE_MB,
  type RegistrationInput,
  validateCreateService,
  validateInstanceName,
  validateMeta,
  validatePort,
  validateRegistration,
  validateTriggerSize,
} from "./validate.js";
