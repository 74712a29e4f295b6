import { createInterface } from "node:readline";
import { RegistrationError } from "../registry/errors.js";
import { EXIT_FAILURE, EXIT_USAGE, HelpRequested, UsageError } from "./errors.js";

/** The console and environment of one CLI run; tests pass a fake to capture output. */
export interface CliIO {
  /** Writes one line (or a block) to stdout; a trailing newline is added. */
  out(text: string): void;
  /** Writes one line (or a block) to stderr; a trailing newline is added. */
  err(text: string): void;
  cwd: string;
  env: NodeJS.ProcessEnv;
  /** Resolves when the operator presses Enter (or stdin ends): used for pauseAtStart. */
  waitForEnter(): Promise<void>;
}

export function processIO(): CliIO {
  return {
    out: (text) => {
      process.stdout.write(`${text}\n`);
    },
    err: (text) => {
      process.stderr.write(`${text}\n`);
    },
    cwd: process.cwd(),
    env: process.env,
    waitForEnter: () =>
      new Promise<void>((resolveEnter) => {
        const rl = createInterface({ input: process.stdin });
        const done = (): void => {
          rl.close();
          resolveEnter();
        };
        rl.once("line", done);
        rl.once("close", done);
      }),
  };
}

/**
 * Reports an error from an admin command (register, list, …) and returns its exit code: bad arguments (and
 * registrations that break a rule) are usage errors, exit 2; everything else is a failure, exit 1. Always one line.
 */
export function reportError(io: CliIO, program: string, error: unknown): number {
  if (error instanceof HelpRequested) {
    io.out(error.text.trimEnd());
    return 0;
  }
  const message = (error instanceof Error ? error.message : String(error)).replace(/\s*\r?\n\s*/g, " ");
  if (error instanceof UsageError || error instanceof RegistrationError) {
    io.err(`${program}: error: ${message} (see '${program} --help')`);
    return EXIT_USAGE;
  }
  io.err(`${program}: error: ${message}`);
  return EXIT_FAILURE;
}
