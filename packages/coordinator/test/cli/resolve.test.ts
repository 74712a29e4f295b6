import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { runAmbrosia } from "../../src/cli/ambrosia.js";
import { resolveCoordinatorOptions, resolveDebugOptions } from "../../src/cli/coordinator-command.js";
import type {
  CoordinatorEngine,
  CoordinatorLaunchOptions,
  DebugLaunchOptions,
} from "../../src/cli/engine.js";
import { FatalError, UsageError } from "../../src/cli/errors.js";
import { runImmortalCoordinator } from "../../src/cli/immortal-coordinator.js";
import type { CliIO } from "../../src/cli/io.js";
import { createRegistration, FolderRegistry, UnknownInstanceError } from "../../src/registry/index.js";

let dir: string;
let registry: FolderRegistry;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "immortal-cli-"));
  registry = new FolderRegistry(join(dir, "registry"));
  await registry.put(
    createRegistration({
      instanceName: "client",
      receivePort: 1000,
      sendPort: 1001,
      icPort: 1500,
      logDir: "/logs",
      logTriggerSizeMB: 1000,
    }),
  );
});

afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

interface Captured {
  io: CliIO;
  out: string[];
  err: string[];
  pressEnter: () => void;
  waiting: () => boolean;
}

function fakeIO(cwd: string): Captured {
  const out: string[] = [];
  const err: string[] = [];
  let release: (() => void) | undefined;
  return {
    out,
    err,
    io: {
      out: (t) => out.push(t),
      err: (t) => err.push(t),
      cwd,
      env: { IMMORTAL_HOME: join(cwd, "registry") },
      waitForEnter: () =>
        new Promise<void>((r) => {
          release = r;
        }),
    },
    pressEnter: () => release?.(),
    waiting: () => release !== undefined,
  };
}

function fakeEngine(): {
  engine: CoordinatorEngine;
  runs: CoordinatorLaunchOptions[];
  debugs: DebugLaunchOptions[];
} {
  const runs: CoordinatorLaunchOptions[] = [];
  const debugs: DebugLaunchOptions[] = [];
  return {
    runs,
    debugs,
    engine: {
      runCoordinator: async (o) => {
        runs.push(o);
      },
      runDebugInstance: async (o) => {
        debugs.push(o);
      },
    },
  };
}

describe("resolveCoordinatorOptions", () => {
  it("takes everything from the registration when the command line only names the instance", async () => {
    expect(await resolveCoordinatorOptions(["-i", "client"], registry, dir)).toEqual({
      instanceName: "client",
      icPort: 1500,
      receivePort: 1000,
      sendPort: 1001,
      logDir: "/logs",
      logTriggerSizeMB: 1000,
      activeActive: false,
      replicaNum: 0,
      ipAddr: "127.0.0.1",
      registryDir: registry.location,
      createService: "A",
      currentVersion: 0,
      upgradeVersion: 0,
      persistLogs: true,
    } satisfies CoordinatorLaunchOptions);
  });

  it("lets -p/-rp/-sp/-l/-lts/-ip override the registration (AMBROSIA's StartupParamOverrides)", async () => {
    const o = await resolveCoordinatorOptions(
      [
        "--instanceName=client",
        "-p",
        "1600",
        "-rp=3000",
        "--sp",
        "3001",
        "-l",
        "other",
        "-lts",
        "5",
        "-ip",
        "10.0.0.7",
      ],
      registry,
      dir,
    );
    expect(o).toMatchObject({
      icPort: 1600,
      receivePort: 3000,
      sendPort: 3001,
      logDir: join(dir, "other"),
      logTriggerSizeMB: 5,
      ipAddr: "10.0.0.7",
    });
  });

  it("-r implies active/active whatever its value; -aa sets it too", async () => {
    expect((await resolveCoordinatorOptions(["-i", "client", "-r", "0"], registry, dir)).activeActive).toBe(
      true,
    );
    expect((await resolveCoordinatorOptions(["-i", "client", "-aa"], registry, dir)).activeActive).toBe(true);
  });

  it("a replica uses its own registered ports, and the command line still wins", async () => {
    expect(
      await runAmbrosia(
        ["AddReplica", "-i", "client", "-r", "1", "-rp", "1100", "-sp", "1101", "-p", "1600"],
        {
          io: fakeIO(dir).io,
          registry,
        },
      ),
    ).toBe(0);
    const o = await resolveCoordinatorOptions(["-i", "client", "-r", "1"], registry, dir);
    expect(o).toMatchObject({
      replicaNum: 1,
      activeActive: true,
      receivePort: 1100,
      sendPort: 1101,
      icPort: 1600,
    });
    const o2 = await resolveCoordinatorOptions(["-i", "client", "-r", "1", "-rp", "1200"], registry, dir);
    expect(o2.receivePort).toBe(1200);
    // Replica 0 (the instance itself) is unchanged, but now registered as active/active.
    expect(await resolveCoordinatorOptions(["-i", "client"], registry, dir)).toMatchObject({
      receivePort: 1000,
      icPort: 1500,
      activeActive: true,
    });
  });

  it("refuses an unregistered instance or replica", async () => {
    await expect(resolveCoordinatorOptions(["-i", "ghost"], registry, dir)).rejects.toBeInstanceOf(
      UnknownInstanceError,
    );
    await expect(resolveCoordinatorOptions(["-i", "client", "-r", "3"], registry, dir)).rejects.toThrow(
      FatalError,
    );
    await expect(resolveCoordinatorOptions(["-i", "client", "-r", "3"], registry, dir)).rejects.toThrow(
      /replica 3 of instance "client" is not registered/,
    );
  });

  it("needs an IC port from somewhere", async () => {
    await registry.put(
      createRegistration({ instanceName: "noport", receivePort: 1, sendPort: 2, logDir: "/l" }),
    );
    await expect(resolveCoordinatorOptions(["-i", "noport"], registry, dir)).rejects.toThrow(
      /no IC-to-IC port for instance "noport": pass --port \(-p\)/,
    );
    expect((await resolveCoordinatorOptions(["-i", "noport", "-p", "3"], registry, dir)).icPort).toBe(3);
  });

  it("rejects overrides that make two ports collide, blobs, and bad names as usage errors", async () => {
    await expect(resolveCoordinatorOptions(["-i", "client", "-p", "1000"], registry, dir)).rejects.toThrow(
      UsageError,
    );
    await expect(resolveCoordinatorOptions(["-i", "client", "-lst", "BLOBS"], registry, dir)).rejects.toThrow(
      /--logStorageType \(-lst\) blobs is not supported yet/,
    );
    await expect(resolveCoordinatorOptions(["-i", "../x"], registry, dir)).rejects.toThrow(
      /invalid value "..\/x" for --instanceName \(-i\)/,
    );
  });
});

describe("resolveDebugOptions", () => {
  it("works without a registration when ports and log are given, with AMBROSIA's defaults", async () => {
    expect(
      await resolveDebugOptions(["-i", "ghost", "-rp", "5", "-sp", "6", "-l", "/logs"], registry, dir),
    ).toEqual({
      instanceName: "ghost",
      receivePort: 5,
      sendPort: 6,
      logDir: "/logs",
      checkpoint: 1,
      currentVersion: 0,
      testingUpgrade: false,
    } satisfies DebugLaunchOptions);
  });

  it("falls back to the registration, and says so when there is none", async () => {
    expect(
      await resolveDebugOptions(["-i", "client", "-c", "3", "-cv", "1", "-tu"], registry, dir),
    ).toMatchObject({
      receivePort: 1000,
      sendPort: 1001,
      logDir: "/logs",
      checkpoint: 3,
      currentVersion: 1,
      testingUpgrade: true,
    });
    await expect(resolveDebugOptions(["-i", "ghost", "-sp", "6"], registry, dir)).rejects.toThrow(
      /missing required option --receivePort \(-rp\) \(instance "ghost" is not registered/,
    );
    await expect(resolveDebugOptions(["-i", "client", "-c", "0"], registry, dir)).rejects.toThrow(
      /--checkpoint \(-c\): expected an integer ≥ 1/,
    );
  });
});

describe("ImmortalCoordinator front end", () => {
  it("launches the engine with the resolved options and exits 0 when it stops", async () => {
    const c = fakeIO(dir);
    const { engine, runs } = fakeEngine();
    const code = await runImmortalCoordinator(["-i", "client", "-an", "x"], {
      io: c.io,
      registry,
      loadEngine: async () => engine,
    });
    expect(code).toBe(0);
    expect(runs).toHaveLength(1);
    expect(runs[0]?.icPort).toBe(1500);
    expect(c.err).toEqual([expect.stringMatching(/^warning: --assemblyName is accepted .* but ignored/)]);
  });

  it("prints FATAL ERROR on stdout and exits 1 for an unregistered instance", async () => {
    const c = fakeIO(dir);
    const code = await runImmortalCoordinator(["-i", "x"], {
      io: c.io,
      registry,
      loadEngine: async () => fakeEngine().engine,
    });
    expect(code).toBe(1);
    expect(c.out).toEqual([
      `FATAL ERROR: instance "x" is not registered in ${registry.location}; ` +
        "register it with 'immortal register' or 'Ambrosia RegisterInstance'",
    ]);
  });

  it("uses IMMORTAL_HOME when no registry is injected", async () => {
    const c = fakeIO(dir);
    const { engine, runs } = fakeEngine();
    expect(await runImmortalCoordinator(["-i", "client"], { io: c.io, loadEngine: async () => engine })).toBe(
      0,
    );
    expect(runs[0]?.registryDir).toBe(registry.location);
  });

  it("reports a missing engine and numbered engine failures as FATAL ERROR lines", async () => {
    const c = fakeIO(dir);
    const missing = async (): Promise<CoordinatorEngine> => {
      throw new FatalError("the coordinator engine is not available in this build");
    };
    expect(await runImmortalCoordinator(["-i", "client"], { io: c.io, registry, loadEngine: missing })).toBe(
      1,
    );
    expect(c.out).toEqual(["FATAL ERROR: the coordinator engine is not available in this build"]);

    const c2 = fakeIO(dir);
    const failing: CoordinatorEngine = {
      runCoordinator: async () => {
        throw Object.assign(new Error("Missing checkpoint 1\nsecond line"), { fatalCode: 2 });
      },
      runDebugInstance: async () => {},
    };
    expect(
      await runImmortalCoordinator(["-i", "client"], {
        io: c2.io,
        registry,
        loadEngine: async () => failing,
      }),
    ).toBe(1);
    expect(c2.out).toEqual(["FATAL ERROR 2: Missing checkpoint 1 second line"]);
  });

  it("exits 2 with one line on stderr for bad arguments, 0 with help on stdout for -h", async () => {
    const c = fakeIO(dir);
    expect(await runImmortalCoordinator(["-rp", "5"], { io: c.io, registry })).toBe(2);
    expect(c.err).toEqual([
      "ImmortalCoordinator: error: missing required option --instanceName (-i) (see 'ImmortalCoordinator --help')",
    ]);
    const h = fakeIO(dir);
    expect(await runImmortalCoordinator(["-h"], { io: h.io, registry })).toBe(0);
    expect(h.out.join("\n")).toContain("-lts, --logTriggerSize <MB>");
  });

  it("waits for Enter before starting when the registration says pauseAtStart", async () => {
    await registry.update("client", (r) => r && { ...r, pauseAtStart: true });
    const c = fakeIO(dir);
    const { engine, runs } = fakeEngine();
    const done = runImmortalCoordinator(["-i", "client"], {
      io: c.io,
      registry,
      loadEngine: async () => engine,
    });
    await vi_waitFor(() => c.waiting());
    expect(runs).toHaveLength(0);
    expect(c.out.at(-1)).toMatch(/pauseAtStart is set for instance "client": press Enter/);
    c.pressEnter();
    expect(await done).toBe(0);
    expect(runs).toHaveLength(1);
  });
});

async function vi_waitFor(cond: () => boolean): Promise<void> {
  for (let i = 0; i < 200 && !cond(); i++) await new Promise((r) => setTimeout(r, 5));
  expect(cond()).toBe(true);
}

describe("Ambrosia front end", () => {
  const ambrosia = async (argv: string[], loadEngine?: () => Promise<CoordinatorEngine>) => {
    const c = fakeIO(dir);
    const code = await runAmbrosia(argv, { io: c.io, registry, loadEngine });
    return { code, out: c.out, err: c.err };
  };

  it("RegisterInstance (any case) stores AMBROSIA's defaults and the optional IC port", async () => {
    const r = await ambrosia([
      "registerinstance",
      "-i=server",
      "-rp=2000",
      "-sp=2001",
      "-l=/tmp/logs",
      "-p",
      "2500",
    ]);
    expect(r.code).toBe(0);
    expect(r.out).toEqual([
      expect.stringMatching(/^Registered instance "server": receive port 2000, send port 2001/),
    ]);
    expect(await registry.require("server")).toMatchObject({
      receivePort: 2000,
      sendPort: 2001,
      icPort: 2500,
      logDir: "/tmp/logs",
      logTriggerSizeMB: 1000,
      createService: "A",
      persistLogs: true,
      currentVersion: 0,
      upgradeVersion: 0,
    });
  });

  it("re-registration replaces settings but keeps identity, replicas, IC port and host", async () => {
    const before = await registry.require("client");
    const r = await ambrosia([
      "RegisterInstance",
      "-i",
      "client",
      "-rp",
      "1000",
      "-sp",
      "1001",
      "-cv",
      "1",
      "-uv",
      "2",
      "-npl",
      "-cs",
      "y",
    ]);
    expect(r.code).toBe(0);
    expect(r.out[0]).toMatch(/^Re-registered/);
    const after = await registry.require("client");
    expect(after).toMatchObject({
      registrationId: before.registrationId,
      icPort: 1500,
      currentVersion: 1,
      upgradeVersion: 2,
      persistLogs: false,
      createService: "Y",
    });
    expect(after.logDir).toBe(join("/", "AmbrosiaLogs"));
  });

  it("AddReplica creates the instance if needed, refuses replica 0, and warns about ignored options", async () => {
    expect((await ambrosia(["AddReplica", "-i", "fresh", "-r", "2"])).code).toBe(2);
    const created = await ambrosia(["AddReplica", "-i", "fresh", "-r", "2", "-rp", "7", "-sp", "8"]);
    expect(created.code).toBe(0);
    expect(await registry.require("fresh")).toMatchObject({
      activeActive: true,
      replicas: [2],
      receivePort: 7,
    });
    const zero = await ambrosia(["AddReplica", "-i", "fresh", "-r", "0"]);
    expect(zero.code).toBe(2);
    expect(zero.err[0]).toMatch(/--replicaNum \(-r\) must not be 0/);
    const again = await ambrosia(["AddReplica", "-i", "fresh", "-r", "3", "-cv", "4", "-uv", "4"]);
    expect(again.code).toBe(0);
    expect(again.err).toEqual([
      expect.stringMatching(/--currentVersion ignored/),
      expect.stringMatching(/--upgradeVersion ignored/),
    ]);
    expect((await registry.require("fresh")).replicas).toEqual([2, 3]);
  });

  it("DebugInstance hands the engine AMBROSIA's debug options", async () => {
    const { engine, debugs } = fakeEngine();
    const r = await ambrosia(
      [
        "DebugInstance",
        "--instanceName=client",
        "--receivePort=4000",
        "--sendPort=4001",
        "--log=/l",
        "--checkpoint=2",
        "--currentVersion=0",
        "--testingUpgrade",
      ],
      async () => engine,
    );
    expect(r.code).toBe(0);
    expect(debugs).toEqual([
      {
        instanceName: "client",
        receivePort: 4000,
        sendPort: 4001,
        logDir: "/l",
        checkpoint: 2,
        currentVersion: 0,
        testingUpgrade: true,
      },
    ]);
  });

  it("explains unknown verbs, missing verbs and bad values in one line with exit code 2", async () => {
    const none = await ambrosia([]);
    expect(none.code).toBe(2);
    const unknown = await ambrosia(["Frobnicate"]);
    expect(unknown).toMatchObject({ code: 2 });
    expect(unknown.err).toEqual([
      `Ambrosia: error: unknown verb "Frobnicate"; expected RegisterInstance, AddReplica or DebugInstance (see 'Ambrosia --help')`,
    ]);
    const bad = await ambrosia(["RegisterInstance", "-i", "x", "-rp", "1", "-sp", "1"]);
    expect(bad.code).toBe(2);
    expect(bad.err).toHaveLength(1);
    expect(bad.err[0]).toMatch(/--receivePort \(-rp\) and --sendPort \(-sp\) are both 1/);
    const help = await ambrosia(["--help"]);
    expect(help.code).toBe(0);
    expect(help.out[0]).toContain("RegisterInstance");
  });
});
