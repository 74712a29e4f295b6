import { describe, expect, it } from "vitest";
import { IMMORTAL_COORDINATOR_COMMAND } from "../../src/cli/coordinator-command.js";
import { HelpRequested, UsageError } from "../../src/cli/errors.js";
import { normalizeArgv } from "../../src/cli/normalize.js";
import { COORDINATOR_OPTIONS, DEBUG_OPTIONS, registerOptions } from "../../src/cli/options.js";
import { helpText, parseOptions } from "../../src/cli/parse.js";

const IC = COORDINATOR_OPTIONS;

describe("normalizeArgv: every Mono.Options form", () => {
  // Each AMBROSIA spelling of "receive port 1000" must come out the same.
  it.each([
    [["-rp", "1000"]],
    [["-rp=1000"]],
    [["-rp:1000"]],
    [["--rp", "1000"]],
    [["--rp=1000"]],
    [["--receivePort", "1000"]],
    [["--receivePort=1000"]],
    [["--receivePort:1000"]],
    [["-receivePort", "1000"]],
    [["-receivePort=1000"]],
  ])("%j", (argv) => {
    expect(normalizeArgv(argv, IC)).toEqual(["--receivePort=1000"]);
  });

  it("maps every multi-letter short form of ImmortalCoordinator", () => {
    const argv = [
      "-i=server",
      "-p",
      "2500",
      "-rp",
      "2000",
      "-sp=2001",
      "-l",
      "/logs",
      "-lts=5",
      "-aa",
      "-r",
      "1",
      "-lst",
      "Files",
      "-ip=10.0.0.1",
      "-an",
      "Asm",
      "-ac=Cls",
    ];
    expect(normalizeArgv(argv, IC)).toEqual([
      "--instanceName=server",
      "--port=2500",
      "--receivePort=2000",
      "--sendPort=2001",
      "--log=/logs",
      "--logTriggerSize=5",
      "--activeActive",
      "--replicaNum=1",
      "--logStorageType=Files",
      "--IPAddr=10.0.0.1",
      "--assemblyName=Asm",
      "--assemblyClass=Cls",
    ]);
  });

  it("maps the registration and debug short forms", () => {
    expect(
      normalizeArgv(["-cs=N", "-ps", "-npl", "-cv", "1", "-uv=2", "-lts", "1000"], registerOptions(1000, "")),
    ).toEqual([
      "--createService=N",
      "--pauseAtStart",
      "--noPersistLogs",
      "--currentVersion=1",
      "--upgradeVersion=2",
      "--logTriggerSize=1000",
    ]);
    expect(normalizeArgv(["-c", "3", "-tu", "-cv=1"], DEBUG_OPTIONS)).toEqual([
      "--checkpoint=3",
      "--testingUpgrade",
      "--currentVersion=1",
    ]);
  });

  it("takes the next token as the value even when it starts with a dash", () => {
    expect(normalizeArgv(["-cv", "-1"], registerOptions(1000, ""))).toEqual(["--currentVersion=-1"]);
    expect(normalizeArgv(["-l", "-weird-dir"], IC)).toEqual(["--log=-weird-dir"]);
  });

  it("keeps inline values verbatim, including '=' and ':' inside them", () => {
    expect(normalizeArgv(["-l=C:\\logs"], IC)).toEqual(["--log=C:\\logs"]);
    expect(normalizeArgv(["--IPAddr=::1"], IC)).toEqual(["--IPAddr=::1"]);
    expect(normalizeArgv(["-ip", "::1"], IC)).toEqual(["--IPAddr=::1"]);
    expect(normalizeArgv(["-i="], IC)).toEqual(["--instanceName="]);
  });

  it("handles flag toggles and flag values like Mono.Options (+/-), and rejects other values", () => {
    expect(normalizeArgv(["-aa+"], IC)).toEqual(["--activeActive"]);
    expect(normalizeArgv(["-aa-"], IC)).toEqual([]);
    expect(normalizeArgv(["--activeActive=true"], IC)).toEqual(["--activeActive"]);
    expect(normalizeArgv(["-aa=false"], IC)).toEqual([]);
    expect(() => normalizeArgv(["-aa=maybe"], IC)).toThrow(UsageError);
    expect(() => normalizeArgv(["-aa=maybe"], IC)).toThrow(
      /--activeActive \(-aa\) is a flag and takes no value/,
    );
  });

  it("maps every help spelling to --help", () => {
    for (const h of ["-h", "--help", "-?", "-help", "--h"])
      expect(normalizeArgv([h], IC)).toEqual(["--help"]);
  });

  it("leaves unknown options, operands and everything after -- untouched", () => {
    expect(normalizeArgv(["-zz", "5", "name", "-", "--", "-rp", "1"], IC)).toEqual([
      "-zz",
      "5",
      "name",
      "-",
      "--",
      "-rp",
      "1",
    ]);
  });

  it("leaves a value-taking option without a value for commander to report", () => {
    expect(normalizeArgv(["-rp"], IC)).toEqual(["--receivePort"]);
  });

  it("is case-sensitive for names, like Mono.Options", () => {
    expect(normalizeArgv(["-RP", "1"], IC)).toEqual(["-RP", "1"]);
  });
});

describe("parseOptions: typed values and one-line errors", () => {
  const parse = (argv: string[]) => parseOptions(IMMORTAL_COORDINATOR_COMMAND, argv);

  it("reads typed values and records which options were given", () => {
    const v = parse(["-i", "server", "-rp=2000", "--sendPort", "2001", "-lst", "FILES", "-aa"]);
    expect(v.string("instanceName")).toBe("server");
    expect(v.number("receivePort")).toBe(2000);
    expect(v.number("sendPort")).toBe(2001);
    expect(v.string("logStorageType")).toBe("files");
    expect(v.flag("activeActive")).toBe(true);
    expect(v.has("port")).toBe(false);
    expect(v.number("port")).toBeUndefined();
  });

  it.each([
    [["-rp", "1"], /^missing required option --instanceName \(-i\)$/],
    [
      ["-i", "x", "-rp", "abc"],
      /^invalid value "abc" for --receivePort \(-rp\): expected a port number from 1 to 65535$/,
    ],
    [
      ["-i", "x", "-p", "70000"],
      /^invalid value "70000" for --port \(-p\): expected a port number from 1 to 65535$/,
    ],
    [["-i", "x", "-p", "0"], /port number from 1 to 65535/],
    [["-i", "x", "-p", "1.5"], /invalid value "1.5"/],
    [["-i", "x", "-lts", "0"], /--logTriggerSize \(-lts\): expected an integer from 1 to/],
    [["-i", "x", "-r", "-1"], /--replicaNum \(-r\): expected an integer ≥ 0/],
    [["-i", "x", "-lst", "tape"], /expected one of files, blobs/],
    [["-i", "x", "--bogus"], /^unknown option '--bogus'$/],
    [["-i", "x", "-zz"], /^unknown option '-zz'$/],
    [["-i", "x", "extra"], /too many arguments|unknown command|excess/i],
    [["-i", "x", "-rp"], /argument missing/],
    [["-i", ""], /--instanceName \(-i\) needs a non-empty value/],
  ])("%j → %s", (argv, message) => {
    let caught: unknown;
    try {
      parse(argv);
    } catch (e) {
      caught = e;
    }
    expect(caught).toBeInstanceOf(UsageError);
    const text = (caught as Error).message;
    expect(text).toMatch(message);
    expect(text).not.toContain("\n");
  });

  it("returns help (not an error) for --help in any spelling", () => {
    for (const h of ["-h", "--help", "-?"]) {
      let caught: unknown;
      try {
        parse([h]);
      } catch (e) {
        caught = e;
      }
      expect(caught).toBeInstanceOf(HelpRequested);
      expect((caught as HelpRequested).text).toContain("-rp, --receivePort <port>");
    }
  });

  it("lists every option with its AMBROSIA short forms in help", () => {
    const text = helpText(IMMORTAL_COORDINATOR_COMMAND);
    for (const spec of IC) {
      const names = [...spec.aliases.map((a) => `-${a}`), `--${spec.key}`].join(", ");
      expect(text).toContain(names);
    }
    expect(text).toContain("Usage: ImmortalCoordinator [options]");
  });
});
