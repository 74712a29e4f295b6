import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  type CliIO,
  type CoordinatorEngine,
  type CoordinatorLaunchOptions,
  FolderRegistry,
  normalizeArgv,
} from "@immortal/coordinator/cli";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { GLOBAL_OPTIONS, runImmortal, VERBS } from "../src/index.js";

let dir: string;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "immortal-cli-norm-"));
});

afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

function io(): { io: CliIO; out: string[]; err: string[] } {
  const out: string[] = [];
  const err: string[] = [];
  return {
    out,
    err,
    io: {
      out: (t) => out.push(t),
      err: (t) => err.push(t),
      cwd: dir,
      env: {},
      waitForEnter: async () => {},
    },
  };
}

const verb = (name: string) => VERBS.find((v) => v.name === name)!;

describe("immortal: every Mono.Options form reaches the registry", () => {
  // Mono.Options (AMBROSIA's parser) accepts each name with one or two dashes and the value inline or next.
  const forms: string[][] = [
    ["-rp", "1000"],
    ["-rp=1000"],
    ["-rp:1000"],
    ["--rp", "1000"],
    ["--rp=1000"],
    ["--receivePort", "1000"],
    ["--receivePort=1000"],
    ["-receivePort", "1000"],
    ["-receivePort=1000"],
  ];
  it.each(forms)("register %s", async (...form) => {
    const c = io();
    const code = await runImmortal(["register", "-i", "a", ...form, "-sp", "1001", "--registry", "reg"], {
      io: c.io,
    });
    expect(code, c.err.join("\n")).toBe(0);
    expect((await new FolderRegistry(join(dir, "reg")).require("a")).receivePort).toBe(1000);
  });

  it("normalizes each verb's own table plus the global options", () => {
    expect(
      normalizeArgv(["-lts", "5", "-registry", "r"], [...verb("coordinator").options, ...GLOBAL_OPTIONS]),
    ).toEqual(["--logTriggerSize=5", "--registry=r"]);
    expect(normalizeArgv(["-c=2", "-tu+"], verb("debug").options)).toEqual([
      "--checkpoint=2",
      "--testingUpgrade",
    ]);
    expect(normalizeArgv(["-r", "1", "-npl"], verb("add-replica").options)).toEqual([
      "--replicaNum=1",
      "--noPersistLogs",
    ]);
  });

  it("immortal coordinator resolves short overrides against the registration", async () => {
    const reg = io();
    await runImmortal(["--registry=reg", "register", "-i", "s", "-rp", "2000", "-sp", "2001", "-p", "2500"], {
      io: reg.io,
    });
    const runs: CoordinatorLaunchOptions[] = [];
    const engine: CoordinatorEngine = {
      runCoordinator: async (o) => {
        runs.push(o);
      },
      runDebugInstance: async () => {},
    };
    const c = io();
    const code = await runImmortal(
      ["coordinator", "-i=s", "-rp:3000", "--sp", "3001", "-lts=7", "--registry", "reg", "-aa"],
      { io: c.io, loadEngine: async () => engine },
    );
    expect(code, c.err.join("\n")).toBe(0);
    expect(runs).toEqual([
      expect.objectContaining({
        instanceName: "s",
        icPort: 2500,
        receivePort: 3000,
        sendPort: 3001,
        logTriggerSizeMB: 7,
        activeActive: true,
        registryDir: join(dir, "reg"),
      }),
    ]);
  });
});
