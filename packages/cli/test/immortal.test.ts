import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

// These tests run the real executables, as a binding or an operator would. They need the built packages.
const here = dirname(fileURLToPath(import.meta.url));
const IMMORTAL = join(here, "../bin/immortal.mjs");
const AMBROSIA = join(here, "../../coordinator/bin/Ambrosia.mjs");
const IMMORTAL_COORDINATOR = join(here, "../../coordinator/bin/ImmortalCoordinator.mjs");
const BUILT = [join(here, "../dist/index.js"), join(here, "../../coordinator/dist/cli/main.js")];

let work: string;
let registryDir: string;

beforeAll(async () => {
  const missing = BUILT.filter((f) => !existsSync(f));
  if (missing.length > 0) {
    throw new Error(
      `not built: ${missing.join(", ")}; run 'npx -y pnpm@10 --filter @immortal/cli... build' before these tests`,
    );
  }
  work = await mkdtemp(join(tmpdir(), "immortal-cli-bin-"));
  registryDir = join(work, "registry");
});

afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function run(bin: string, args: string[], env: Record<string, string> = {}): Run {
  const r = spawnSync(process.execPath, [bin, ...args], {
    cwd: work,
    env: { ...process.env, IMMORTAL_HOME: registryDir, ...env },
    encoding: "utf8",
    timeout: 20_000,
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

const immortal = (...args: string[]): Run => run(IMMORTAL, args);

/** Exit code 2 and exactly one non-empty line on stderr matching `message`. */
function expectUsageError(r: Run, message: RegExp): void {
  expect(r.code, r.stderr).toBe(2);
  const lines = r.stderr.split("\n").filter((l) => l !== "");
  expect(lines, r.stderr).toHaveLength(1);
  expect(lines[0]).toMatch(message);
}

describe("immortal register / list / show / unregister", () => {
  it("register then list shows the instance", () => {
    const reg = immortal(
      "register",
      "-i",
      "server",
      "-rp",
      "2000",
      "-sp",
      "2001",
      "-p",
      "2500",
      "-l",
      "logs",
    );
    expect(reg.code, reg.stderr).toBe(0);
    expect(reg.stdout).toContain(`Registered instance "server" in ${registryDir}`);
    expect(reg.stdout).toMatch(/IC port:\s+2500/);
    const list = immortal("list");
    expect(list.code).toBe(0);
    expect(list.stdout).toMatch(/^NAME\s+HOST\s+IC PORT\s+RECEIVE\s+SEND/m);
    expect(list.stdout).toMatch(
      new RegExp(
        `^server\\s+127\\.0\\.0\\.1\\s+2500\\s+2000\\s+2001\\s+0\\s+no\\s+-\\s+${join(work, "logs")}$`,
        "m",
      ),
    );
    const json = JSON.parse(immortal("list", "--json").stdout) as Array<{ instanceName: string }>;
    expect(json.map((r) => r.instanceName)).toContain("server");
  });

  it("accepts long forms and --registry anywhere on the line", () => {
    const other = join(work, "other-registry");
    const reg = immortal(
      "register",
      "--instanceName=client",
      "--receivePort=1000",
      "--sendPort",
      "1001",
      "--port=1500",
      "--registry",
      other,
      "--host",
      "10.0.0.5",
    );
    expect(reg.code, reg.stderr).toBe(0);
    const show = immortal("--registry", other, "show", "client");
    expect(show.code, show.stderr).toBe(0);
    expect(show.stdout).toMatch(/host:\s+10\.0\.0\.5/);
    expect(immortal("show", "client").code).toBe(1);
  });

  it("Ambrosia RegisterInstance (drop-in form) then immortal show displays it", () => {
    const reg = run(AMBROSIA, ["RegisterInstance", "-i=x", "-rp=1000", "-sp=1001", "-l=/tmp/logs"]);
    expect(reg.code, reg.stderr).toBe(0);
    expect(reg.stdout).toMatch(
      /^Registered instance "x": receive port 1000, send port 1001, log \/tmp\/logs/,
    );
    const show = immortal("show", "x");
    expect(show.code, show.stderr).toBe(0);
    expect(show.stdout).toMatch(/instance:\s+x/);
    expect(show.stdout).toMatch(/receive port:\s+1000/);
    expect(show.stdout).toMatch(/send port:\s+1001/);
    expect(show.stdout).toMatch(/log folder:\s+\/tmp\/logs/);
    expect(show.stdout).toMatch(/log trigger size:\s+1000 MB/);
    const json = JSON.parse(immortal("show", "x", "--json").stdout) as {
      registration: { registrationId: string };
      meta: object;
    };
    expect(json.registration.registrationId).toMatch(/^[0-9a-f-]{36}$/);
    expect(json.meta).toEqual({});
  });

  it("add-replica and unregister", () => {
    expect(immortal("register", "-i", "aa", "-rp", "3000", "-sp", "3001", "-p", "3500").code).toBe(0);
    const add = immortal("add-replica", "-i", "aa", "-r", "1", "-rp", "3100", "-sp", "3101", "-p", "3600");
    expect(add.code, add.stderr).toBe(0);
    const show = immortal("show", "aa");
    expect(show.stdout).toMatch(/active\/active:\s+yes/);
    expect(show.stdout).toMatch(/replica 1:\s+receive port 3100, send port 3101, IC port 3600/);
    const un = immortal("unregister", "aa");
    expect(un.code, un.stderr).toBe(0);
    expect(un.stdout).toContain(`Unregistered instance "aa" from ${registryDir}`);
    const again = immortal("unregister", "aa");
    expect(again.code).toBe(1);
    expect(again.stderr.trim()).toBe(
      `immortal unregister: error: instance "aa" is not registered in ${registryDir}; ` +
        "register it with 'immortal register' or 'Ambrosia RegisterInstance'",
    );
  });
});

describe("help", () => {
  const verbs: Array<[string, string[]]> = [
    [
      "register",
      [
        "-i, --instanceName <name>",
        "-rp, --receivePort <port>",
        "-sp, --sendPort <port>",
        "-cs, --createService",
        "-npl, --noPersistLogs",
        "-uv, --upgradeVersion",
        "-p, --port <port>",
        "--host <host>",
      ],
    ],
    ["add-replica", ["-r, --replicaNum <n>", "-rp, --receivePort <port>"]],
    ["list", ["--json"]],
    ["show", ["<name>", "--json"]],
    ["unregister", ["<name>"]],
    [
      "coordinator",
      [
        "-lts, --logTriggerSize <MB>",
        "-aa, --activeActive",
        "-lst, --logStorageType",
        "-ip, --IPAddr",
        "-an, --assemblyName",
      ],
    ],
    ["debug", ["-c, --checkpoint <n>", "-cv, --currentVersion <n>", "-tu, --testingUpgrade"]],
  ];
  it.each(verbs)("immortal %s --help", (verb, mentions) => {
    const r = immortal(verb, "--help");
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(`Usage: immortal ${verb}`);
    for (const m of [...mentions, "--registry <dir>"]) expect(r.stdout).toContain(m);
    // The AMBROSIA spellings of help work too.
    expect(immortal(verb, "-?").code).toBe(0);
  });

  it("immortal --help lists every verb", () => {
    const r = immortal("--help");
    expect(r.code).toBe(0);
    for (const [verb] of verbs) expect(r.stdout).toContain(verb);
  });

  it("Ambrosia and ImmortalCoordinator have help too", () => {
    const a = run(AMBROSIA, ["--help"]);
    expect(a.code).toBe(0);
    expect(a.stdout).toMatch(/RegisterInstance[\s\S]*AddReplica[\s\S]*DebugInstance/);
    for (const verb of ["RegisterInstance", "addreplica", "DEBUGINSTANCE"]) {
      const v = run(AMBROSIA, [verb, "-h"]);
      expect(v.code, v.stderr).toBe(0);
      expect(v.stdout).toContain("-i, --instanceName <name>");
    }
    const ic = run(IMMORTAL_COORDINATOR, ["--help"]);
    expect(ic.code).toBe(0);
    expect(ic.stdout).toContain("-rp, --receivePort <port>");
  });

  it("no verb prints help on stderr and exits 2", () => {
    const r = immortal();
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("Usage: immortal");
  });
});

describe("bad arguments: exit code 2 and one clear line on stderr", () => {
  it("missing -i", () => {
    expectUsageError(
      immortal("register", "-rp", "1", "-sp", "2"),
      /^immortal register: error: missing required option --instanceName \(-i\)/,
    );
  });
  it('port "abc"', () => {
    expectUsageError(
      immortal("register", "-i", "a", "-rp", "abc", "-sp", "2"),
      /invalid value "abc" for --receivePort \(-rp\): expected a port number from 1 to 65535/,
    );
  });
  it("port 70000", () => {
    expectUsageError(
      immortal("register", "-i", "a", "-rp", "1", "-sp=70000"),
      /invalid value "70000" for --sendPort \(-sp\): expected a port number from 1 to 65535/,
    );
  });
  it("unknown option", () => {
    expectUsageError(immortal("register", "-i", "a", "--frobnicate"), /unknown option '--frobnicate'/);
    expectUsageError(immortal("list", "-zz"), /unknown option '-zz'/);
  });
  it("-cv 2 -uv 1", () => {
    expectUsageError(
      immortal("register", "-i", "a", "-rp", "1", "-sp", "2", "-cv", "2", "-uv", "1"),
      /--currentVersion \(-cv\) 2 is greater than --upgradeVersion \(-uv\) 1/,
    );
  });
  it("bad instance name, unknown verb, missing operand", () => {
    expectUsageError(immortal("register", "-i", ".x", "-rp", "1", "-sp", "2"), /must not start with '\.'/);
    expectUsageError(immortal("frobnicate"), /unknown command 'frobnicate'/);
    expectUsageError(immortal("show"), /missing required argument 'name'/);
  });
  it("the AMBROSIA executables too", () => {
    expectUsageError(
      run(AMBROSIA, ["RegisterInstance", "-i", "a", "-rp", "1"]),
      /missing required option --sendPort \(-sp\)/,
    );
    expectUsageError(run(AMBROSIA, ["Register"]), /unknown verb "Register"/);
    expectUsageError(
      run(IMMORTAL_COORDINATOR, ["-i", "a", "-p", "abc"]),
      /invalid value "abc" for --port \(-p\)/,
    );
    expectUsageError(run(IMMORTAL_COORDINATOR, ["-i", "a", "-lst", "blobs"]), /blobs is not supported yet/);
    expectUsageError(run(IMMORTAL_COORDINATOR, []), /missing required option --instanceName \(-i\)/);
  });
});

describe("coordinator front ends refuse an unregistered instance", () => {
  const fatal = `FATAL ERROR: instance "ghost" is not registered in ${"REG"}; register it with 'immortal register' or 'Ambrosia RegisterInstance'`;
  it("ImmortalCoordinator", () => {
    const r = run(IMMORTAL_COORDINATOR, ["-i", "ghost", "-p", "4500"]);
    expect(r.code).toBe(1);
    expect(r.stdout.trim()).toBe(fatal.replace("REG", registryDir));
  });
  it("immortal coordinator", () => {
    const r = immortal("coordinator", "--instanceName", "ghost");
    expect(r.code).toBe(1);
    expect(r.stdout.trim()).toBe(fatal.replace("REG", registryDir));
  });
});
