import { Command, CommanderError, Help, type HelpConfiguration, Option } from "commander";
import { HelpRequested, UsageError } from "./errors.js";
import { normalizeArgv } from "./normalize.js";
import { type OptionSpec, optionLabel } from "./options.js";

/** A commander option that remembers its table entry, so help can print AMBROSIA's short forms. */
export class SpecOption extends Option {
  constructor(readonly spec: OptionSpec) {
    super(
      spec.kind === "flag" ? `--${spec.key}` : `--${spec.key} <${spec.valueName ?? "value"}>`,
      spec.description,
    );
  }
}

/**
 * Help shows `-rp, --receivePort <port>` although commander itself only sees `--receivePort` (it rejects
 * multi-letter short flags; the normalizer maps them before it parses).
 */
export const HELP_CONFIGURATION: HelpConfiguration = {
  optionTerm(option: Option): string {
    if (!(option instanceof SpecOption)) return option.flags;
    const names = [...option.spec.aliases.map((a) => `-${a}`), option.flags];
    return names.join(", ");
  },
  optionDescription(this: Help, option: Option): string {
    if (!(option instanceof SpecOption)) return Help.prototype.optionDescription.call(this, option);
    const { spec } = option;
    const extras: string[] = [];
    if (spec.required) extras.push("required");
    if (spec.choices !== undefined && spec.kind === "enum") extras.push(`one of ${spec.choices.join(", ")}`);
    if (spec.defaultText !== undefined) extras.push(`default: ${spec.defaultText}`);
    return extras.length === 0 ? spec.description : `${spec.description} (${extras.join("; ")})`;
  },
};

/** Where commander's own output (help text) is collected instead of being written to the process. */
export interface CommanderSink {
  out: string;
  err: string;
}

/**
 * Makes `cmd` throw instead of exiting and write into `sink` instead of the console. Call it on a root command
 * before adding subcommands with `.command()`, which inherit these settings.
 */
export function prepareCommand(cmd: Command, sink: CommanderSink): Command {
  return cmd
    .exitOverride()
    .configureOutput({
      writeOut: (s) => {
        sink.out += s;
      },
      writeErr: (s) => {
        sink.err += s;
      },
      // Errors are rethrown as UsageError and printed by the front end, on one line.
      outputError: () => {},
      getOutHelpWidth: () => 100,
      getErrHelpWidth: () => 100,
    })
    .configureHelp(HELP_CONFIGURATION)
    .showSuggestionAfterError(true)
    .allowExcessArguments(false);
}

export function addSpecOptions(cmd: Command, table: readonly OptionSpec[]): Command {
  for (const spec of table) cmd.addOption(new SpecOption(spec));
  return cmd;
}

/** Commander's message as one line without its "error: " prefix (suggestions come on a second line). */
export function commanderMessage(e: CommanderError): string {
  return e.message.replace(/^error:\s*/i, "").replace(/\s*\r?\n\s*/g, " ");
}

/**
 * Runs commander on an already normalized argv. Returns the help text when help was asked for; throws
 * UsageError for anything commander rejects.
 */
export function runCommander(cmd: Command, argv: readonly string[], sink: CommanderSink): { help?: string } {
  try {
    cmd.parse([...argv], { from: "user" });
    return {};
  } catch (e) {
    if (e instanceof CommanderError) {
      if (e.code === "commander.helpDisplayed" || e.code === "commander.version") return { help: sink.out };
      // `help <verb>` exits 0 with the verb's help; a missing subcommand exits 1 after printing help to stderr.
      if (e.code === "commander.help") {
        if (e.exitCode === 0) return { help: sink.out };
        throw new UsageError("a command is required");
      }
      throw new UsageError(commanderMessage(e));
    }
    throw e;
  }
}

export type OptionValue = string | number | boolean;

/** Checked option values, keyed by the option's long name; flags are always present (false when absent). */
export class OptionValues {
  constructor(
    private readonly values: ReadonlyMap<string, OptionValue>,
    /** Options the user actually gave (flags: only when switched on). */
    readonly given: ReadonlySet<string>,
  ) {}

  has(key: string): boolean {
    return this.given.has(key);
  }

  string(key: string): string | undefined {
    const v = this.values.get(key);
    if (v !== undefined && typeof v !== "string") throw new TypeError(`option ${key} is not a string option`);
    return v;
  }

  number(key: string): number | undefined {
    const v = this.values.get(key);
    if (v !== undefined && typeof v !== "number")
      throw new TypeError(`option ${key} is not a numeric option`);
    return v;
  }

  flag(key: string): boolean {
    const v = this.values.get(key);
    if (v !== undefined && typeof v !== "boolean") throw new TypeError(`option ${key} is not a flag`);
    return v === true;
  }
}

function parseInteger(spec: OptionSpec, raw: string, min: number, max: number, expected: string): number {
  const trimmed = raw.trim();
  const n = /^[+-]?\d+$/.test(trimmed) ? Number(trimmed) : Number.NaN;
  if (!Number.isSafeInteger(n) || n < min || n > max) {
    throw new UsageError(`invalid value "${raw}" for ${optionLabel(spec)}: expected ${expected}`);
  }
  return n;
}

function convertOne(spec: OptionSpec, raw: unknown): OptionValue {
  if (spec.kind === "flag") return raw === true;
  if (typeof raw !== "string") throw new UsageError(`${optionLabel(spec)} needs a value`);
  switch (spec.kind) {
    case "port":
      return parseInteger(spec, raw, 1, 65535, "a port number from 1 to 65535");
    case "int": {
      const min = spec.min ?? Number.MIN_SAFE_INTEGER;
      const max = spec.max ?? Number.MAX_SAFE_INTEGER;
      const range =
        spec.max !== undefined
          ? `an integer from ${min} to ${max}`
          : spec.min !== undefined
            ? `an integer ≥ ${min}`
            : "an integer";
      return parseInteger(spec, raw, min, max, range);
    }
    case "enum": {
      // Mono.Options enums (AMBROSIA's -lst, -cs) are case-insensitive.
      const match = spec.choices?.find((c) => c.toLowerCase() === raw.trim().toLowerCase());
      if (match === undefined) {
        throw new UsageError(
          `invalid value "${raw}" for ${optionLabel(spec)}: expected one of ${(spec.choices ?? []).join(", ")}`,
        );
      }
      return match;
    }
    case "string":
      if (raw.trim() === "") throw new UsageError(`${optionLabel(spec)} needs a non-empty value`);
      return raw;
  }
}

/** Checks commander's raw strings against the table: types, ranges, choices, required options. */
export function convertOptionValues(
  table: readonly OptionSpec[],
  raw: Record<string, unknown>,
): OptionValues {
  const values = new Map<string, OptionValue>();
  const given = new Set<string>();
  for (const spec of table) {
    const v = raw[spec.key];
    if (v === undefined || v === false) {
      if (spec.required) throw new UsageError(`missing required option ${optionLabel(spec)}`);
      if (spec.kind === "flag") values.set(spec.key, false);
      continue;
    }
    values.set(spec.key, convertOne(spec, v));
    given.add(spec.key);
  }
  return new OptionValues(values, given);
}

/** A command that takes only the options of one table (ImmortalCoordinator, the Ambrosia verbs). */
export interface CommandSpec {
  /** As shown in usage: `ImmortalCoordinator`, `Ambrosia RegisterInstance`. */
  readonly name: string;
  readonly summary: string;
  readonly options: readonly OptionSpec[];
}

/**
 * Normalizes, parses and checks a command line for one table. Throws HelpRequested (with the help text) for
 * `--help`, UsageError for every bad argument.
 */
export function parseOptions(spec: CommandSpec, argv: readonly string[]): OptionValues {
  const sink: CommanderSink = { out: "", err: "" };
  const cmd = prepareCommand(new Command(spec.name), sink).description(spec.summary);
  addSpecOptions(cmd, spec.options);
  const { help } = runCommander(cmd, normalizeArgv(argv, spec.options), sink);
  if (help !== undefined) throw new HelpRequested(help);
  return convertOptionValues(spec.options, cmd.opts());
}

/** The help text of a table-driven command, without parsing anything. */
export function helpText(spec: CommandSpec): string {
  const sink: CommanderSink = { out: "", err: "" };
  const cmd = prepareCommand(new Command(spec.name), sink).description(spec.summary);
  addSpecOptions(cmd, spec.options);
  return cmd.helpInformation();
}
