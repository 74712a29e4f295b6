/** Base class of every error the SDK raises itself. */
export class ImmortalError extends Error {
  override readonly name: string = "ImmortalError";
}

/** A definition the SDK cannot accept (a reserved or colliding handler name, a missing state factory). */
export class DefinitionError extends ImmortalError {
  override readonly name = "DefinitionError";
}

/** A call named a method the destination's type does not have. */
export class UnknownMethodError extends ImmortalError {
  override readonly name = "UnknownMethodError";
  constructor(
    readonly typeName: string,
    readonly method: string,
  ) {
    super(`${typeName} has no handler "${method}"`);
  }
}

/**
 * The callee's handler threw (or the callee had no such handler): the caller gets this instead of a result.
 * `remoteName` and `remoteMessage` are the callee's error, as it reported it.
 */
export class RemoteHandlerError extends ImmortalError {
  override readonly name = "RemoteHandlerError";
  constructor(
    readonly destination: string,
    readonly method: string,
    readonly remoteName: string,
    readonly remoteMessage: string,
  ) {
    super(`${destination}.${method} failed: ${remoteName}: ${remoteMessage}`);
  }
}

/** A message whose SDK envelope could not be read (not sent by this SDK, or corrupted). */
export class EnvelopeError extends ImmortalError {
  override readonly name = "EnvelopeError";
}

/** Something only a primary may do (an impulse, an outside call) was attempted by a closed instance. */
export class NotRunningError extends ImmortalError {
  override readonly name = "NotRunningError";
}

/**
 * A live upgrade or what-if test cannot proceed: the app has no definition of a version the registration
 * names, or a pending continuation or timer names a handler the new version lacks.
 */
export class UpgradeError extends ImmortalError {
  override readonly name = "UpgradeError";
}
