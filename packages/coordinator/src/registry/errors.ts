/**
 * Every way a registration can be invalid. The code lets a caller (the CLI, a test, a future remote registry)
 * tell the cases apart without parsing messages; the message is written for the operator.
 */
export type RegistrationErrorCode =
  /** Instance name empty, too long, or not filesystem-safe ([A-Za-z0-9_.-], no leading dot or dash). */
  | "INVALID_NAME"
  /** IC host empty or containing whitespace. */
  | "INVALID_HOST"
  /** A port that is not an integer in 1–65535. */
  | "INVALID_PORT"
  /** Two of the instance's own ports (receive, send, IC-to-IC) are the same. */
  | "PORT_CONFLICT"
  /** Log folder missing or empty. */
  | "INVALID_LOG_DIR"
  /** A version that is not a non-negative integer. */
  | "INVALID_VERSION"
  /** upgradeVersion is lower than currentVersion. */
  | "VERSION_ORDER"
  /** A replica number that is not a positive integer, is listed twice, or has overrides without being listed. */
  | "INVALID_REPLICA"
  /** Log trigger size that is not a positive integer number of MB. */
  | "INVALID_TRIGGER_SIZE"
  /** createService other than A, N or Y. */
  | "INVALID_CREATE_SERVICE"
  /** Any other field of the wrong type or shape (booleans, identity, timestamps). */
  | "INVALID_FIELD"
  /** A record stored or updated under a name other than its own instanceName. */
  | "NAME_MISMATCH";

export class RegistrationError extends Error {
  override readonly name = "RegistrationError";
  constructor(
    readonly code: RegistrationErrorCode,
    message: string,
  ) {
    super(message);
  }
}

/** A lookup of an instance that the registry does not know. */
export class UnknownInstanceError extends Error {
  override readonly name = "UnknownInstanceError";
  constructor(
    readonly instanceName: string,
    /** Where the registry lives (a folder for the embedded registry), so the operator knows where we looked. */
    readonly registryLocation: string,
  ) {
    super(
      `instance "${instanceName}" is not registered in ${registryLocation}; ` +
        "register it with 'immortal register' or 'Ambrosia RegisterInstance'",
    );
  }
}

/** A stored file that is not a valid record (hand-edited, or written by an incompatible version). */
export class RegistryCorruptError extends Error {
  override readonly name = "RegistryCorruptError";
  constructor(
    readonly path: string,
    reason: string,
  ) {
    super(`registry file ${path} is unreadable: ${reason}`);
  }
}

/** The per-instance lock could not be taken in time (another writer holds it and is alive). */
export class RegistryLockTimeoutError extends Error {
  override readonly name = "RegistryLockTimeoutError";
  constructor(
    readonly lockPath: string,
    readonly waitedMs: number,
    /** What the lock file said about its holder, when it could be read. */
    readonly holder: string,
  ) {
    super(`timed out after ${waitedMs} ms waiting for registry lock ${lockPath} (held by ${holder})`);
  }
}
