import { UsageError } from "./errors.js";
import { type OptionSpec, optionLabel } from "./options.js";

// Mono.Options' token shape: one or two dashes, a name, then optionally `=` or `:` and an inline value.
const OPTION_RE = /^(--?)([^=:]+)(?:([=:])([\s\S]*))?$/;
const HELP_NAMES = new Set(["h", "help", "?"]);

/**
 * Rewrites an AMBROSIA (Mono.Options) command line into the one form commander understands.
 *
 * Commander only knows one-letter short options, while AMBROSIA has `-rp`, `-lts`, `-aa`, … and Mono.Options
 * accepts every name with one or two dashes, with the value inline (`=` or `:`) or as the next argument.
 * So every known name becomes `--<key>=<value>` (one token: a value that starts with `-`, like `-cv -1`, can
 * then never be mistaken for an option) and flags become `--<key>`. Unknown tokens pass through unchanged so
 * commander reports them; everything after `--` is left alone.
 *
 * Accepted: `-x v`, `-x=v`, `-x:v`, `--x v`, `--x=v`, `--x:v` for any name or alias; flags `-x`, `--x`,
 * `-x+` (on), `-x-` (off), and `-x=true|false`. Not accepted: Mono's `/x` prefix (a Unix path looks the same)
 * and bundled values like `-p1500` (`-rp5` would mean `-r p5` there, which only hides typos).
 */
export function normalizeArgv(argv: readonly string[], table: readonly OptionSpec[]): string[] {
  const byName = new Map<string, OptionSpec>();
  for (const spec of table) {
    byName.set(spec.key, spec);
    for (const alias of spec.aliases) byName.set(alias, spec);
  }
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const token = argv[i]!;
    if (token === "--") {
      out.push(...argv.slice(i));
      break;
    }
    const m = OPTION_RE.exec(token);
    if (m === null) {
      out.push(token);
      continue;
    }
    const name = m[2]!;
    const sep = m[3];
    const inline = m[4];
    if (HELP_NAMES.has(name) && !byName.has(name)) {
      out.push("--help");
      continue;
    }
    let spec = byName.get(name);
    let toggle: "+" | "-" | undefined;
    if (spec === undefined && sep === undefined && (name.endsWith("+") || name.endsWith("-"))) {
      const base = byName.get(name.slice(0, -1));
      if (base?.kind === "flag") {
        spec = base;
        toggle = name.endsWith("+") ? "+" : "-";
      }
    }
    if (spec === undefined) {
      out.push(token);
      continue;
    }
    if (spec.kind === "flag") {
      if (flagIsOn(spec, toggle, sep === undefined ? undefined : inline)) out.push(`--${spec.key}`);
      continue;
    }
    if (sep !== undefined) {
      out.push(`--${spec.key}=${inline}`);
    } else if (i + 1 < argv.length) {
      // Like Mono.Options, the next token is the value even if it starts with a dash.
      out.push(`--${spec.key}=${argv[++i]}`);
    } else {
      // Missing value: let commander report it in its usual words.
      out.push(`--${spec.key}`);
    }
  }
  return out;
}

function flagIsOn(spec: OptionSpec, toggle: "+" | "-" | undefined, inline: string | undefined): boolean {
  if (toggle !== undefined) return toggle === "+";
  if (inline === undefined) return true;
  const v = inline.toLowerCase();
  if (v === "true" || v === "1" || v === "") return true;
  if (v === "false" || v === "0") return false;
  throw new UsageError(`${optionLabel(spec)} is a flag and takes no value (got "${inline}")`);
}
