/** Exit code for a bad command line (unknown option, bad value, missing required option), as getopt tools do. */
export const EXIT_USAGE = 2;
/** Exit code for a well-formed command that failed (unknown instance, engine failure, registry error). */
export const EXIT_FAILURE = 1;

/**
 * A bad command line. The message is one line, written for the operator, and names the offending option in
 * its long form with the AMBROSIA short form in parentheses.
 */
export class UsageError extends Error {
  override readonly name = "UsageError";
}

/**
 * `--help` (or `-h`, `-?`) was given where a parse result was expected. Carries the help text so a caller can
 * print it; it is not a failure.
 */
export class HelpRequested extends Error {
  override readonly name = "HelpRequested";
  constructor(readonly text: string) {
    super("help requested");
  }
}

/**
 * A condition that stops the coordinator before (or while) it runs. Printed as `FATAL ERROR: <message>`, or
 * `FATAL ERROR <code>: <message>` when `fatalCode` is set: AMBROSIA's numbered fatal errors (0 Unexpected,
 * 1 VersionMismatch, 2 MissingCheckpoint, 3 MissingLog, 4 AzureOperationError, 5 LogWriteError) which the
 * Node binding watches for on the IC's stdout.
 */
export class FatalError extends Error {
  override readonly name = "FatalError";
  constructor(
    message: string,
    readonly fatalCode?: number,
  ) {
    super(message);
  }
}

/** The line a fatal error is reported with. Any error with a numeric `fatalCode` (the engine's too) is numbered. */
export function formatFatal(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  const code =
    typeof error === "object" && error !== null && "fatalCode" in error && typeof error.fatalCode === "number"
      ? error.fatalCode
      : undefined;
  // One line: the Node binding reads the IC's stdout line by line.
  const oneLine = message.replace(/\s*\r?\n\s*/g, " ");
  return code === undefined ? `FATAL ERROR: ${oneLine}` : `FATAL ERROR ${code}: ${oneLine}`;
}
