import { mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  createRegistration,
  FolderRegistry,
  type InstanceRegistration,
  RegistrationError,
  type RegistrationErrorCode,
  RegistryCorruptError,
  resolveRegistryDir,
  UnknownInstanceError,
  validateRegistration,
} from "../../src/registry/index.js";

let dir: string;
let registry: FolderRegistry;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "immortal-registry-"));
  registry = new FolderRegistry(dir);
});

afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

function sample(name = "server"): InstanceRegistration {
  return createRegistration({
    instanceName: name,
    receivePort: 2000,
    sendPort: 2001,
    icPort: 2500,
    logDir: "/logs",
  });
}

describe("FolderRegistry round trip", () => {
  it("stores, reads back, lists and removes a registration", async () => {
    const reg = sample();
    const stored = await registry.put(reg);
    expect(stored).toEqual({ ...reg, updatedAt: stored.updatedAt });
    expect(await registry.get("server")).toEqual(stored);
    expect(await registry.require("server")).toEqual(stored);
    await registry.put(sample("client"));
    expect((await registry.list()).map((r) => r.instanceName)).toEqual(["client", "server"]);
    expect(await registry.remove("server")).toBe(true);
    expect(await registry.remove("server")).toBe(false);
    expect(await registry.get("server")).toBeUndefined();
    expect((await registry.list()).map((r) => r.instanceName)).toEqual(["client"]);
  });

  it("fills defaults and a fresh identity on creation", () => {
    const reg = createRegistration({
      instanceName: "a",
      receivePort: 1,
      sendPort: 2,
      logDir: "/l",
      currentVersion: 3,
    });
    expect(reg).toMatchObject({
      host: "127.0.0.1",
      currentVersion: 3,
      upgradeVersion: 3,
      activeActive: false,
      replicas: [],
      replicaOverrides: {},
      logTriggerSizeMB: 1024,
      createService: "A",
      pauseAtStart: false,
      persistLogs: true,
    });
    expect(reg.icPort).toBeUndefined();
    expect("icPort" in reg).toBe(false);
    expect(reg.registrationId).toMatch(/^[0-9a-f-]{36}$/);
    expect(
      createRegistration({ instanceName: "a", receivePort: 1, sendPort: 2, logDir: "/l" }).registrationId,
    ).not.toBe(reg.registrationId);
  });

  it("an empty or missing registry lists nothing and reports unknown instances with its location", async () => {
    expect(await registry.list()).toEqual([]);
    expect(await registry.getMeta("server")).toEqual({});
    const err = await registry.require("ghost").catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UnknownInstanceError);
    expect((err as Error).message).toBe(
      `instance "ghost" is not registered in ${dir}; register it with 'immortal register' or 'Ambrosia RegisterInstance'`,
    );
  });

  it("update upserts, keeps the record when the mutator returns undefined, and refuses a renamed record", async () => {
    const created = await registry.update("server", (cur) => cur ?? sample());
    expect(created?.instanceName).toBe("server");
    const same = await registry.update("server", () => undefined);
    expect(same).toEqual(created);
    const bumped = await registry.update("server", (cur) => cur && { ...cur, upgradeVersion: 4 });
    expect(bumped?.upgradeVersion).toBe(4);
    expect(bumped?.registrationId).toBe(created?.registrationId);
    await expect(registry.update("server", () => sample("other"))).rejects.toMatchObject({
      code: "NAME_MISMATCH",
    });
    await expect(registry.update("nobody", () => undefined)).resolves.toBeUndefined();
  });

  it("keeps runtime metadata next to the registration", async () => {
    await registry.put(sample());
    const meta = await registry.updateMeta("server", (m) => ({
      ...m,
      currentVersion: 0,
      lastLogFile: 1,
      icAddress: { host: "127.0.0.1", port: 2500, pid: process.pid, startedAt: new Date().toISOString() },
    }));
    expect(await registry.getMeta("server")).toEqual(meta);
    await registry.updateMeta("server", (m) => ({ ...m, lastCommittedCheckpoint: 2 }));
    expect(await registry.getMeta("server")).toMatchObject({ lastLogFile: 1, lastCommittedCheckpoint: 2 });
    await registry.remove("server");
    expect(await registry.getMeta("server")).toEqual({});
  });

  it("writes atomically: pretty JSON, no temp or lock files left behind", async () => {
    await registry.put(sample());
    await registry.update("server", (c) => c && { ...c, currentVersion: 1, upgradeVersion: 1 });
    await registry.updateMeta("server", () => ({ lastLogFile: 3 }));
    expect(await readdir(join(dir, "instances"))).toEqual(["server.json"]);
    expect(await readdir(join(dir, "meta"))).toEqual(["server.json"]);
    expect(await readdir(join(dir, "locks"))).toEqual([]);
    const text = await readFile(join(dir, "instances", "server.json"), "utf8");
    expect(JSON.parse(text)).toMatchObject({ instanceName: "server", currentVersion: 1 });
    expect(text.endsWith("}\n")).toBe(true);
  });

  it("reports a corrupt or misplaced file instead of guessing", async () => {
    await registry.put(sample());
    await writeFile(join(dir, "instances", "server.json"), "{ not json");
    await expect(registry.get("server")).rejects.toBeInstanceOf(RegistryCorruptError);
    await writeFile(join(dir, "instances", "server.json"), JSON.stringify({ ...sample(), receivePort: 0 }));
    await expect(registry.get("server")).rejects.toThrow(/receivePort must be an integer from 1 to 65535/);
    await writeFile(join(dir, "instances", "server.json"), JSON.stringify(sample("client")));
    await expect(registry.get("server")).rejects.toThrow(/holds instance "client"/);
  });

  it("rejects unsafe names before touching the file system", async () => {
    await expect(registry.get("../etc/passwd")).rejects.toMatchObject({ code: "INVALID_NAME" });
    await expect(registry.getMeta(".hidden")).rejects.toMatchObject({ code: "INVALID_NAME" });
  });
});

describe("resolveRegistryDir", () => {
  it("prefers the explicit folder, then IMMORTAL_HOME, then ./.immortal", () => {
    expect(resolveRegistryDir({ dir: "reg", env: { IMMORTAL_HOME: "/home" }, cwd: "/w" })).toBe("/w/reg");
    expect(resolveRegistryDir({ env: { IMMORTAL_HOME: "/home" }, cwd: "/w" })).toBe("/home");
    expect(resolveRegistryDir({ env: { IMMORTAL_HOME: "" }, cwd: "/w" })).toBe("/w/.immortal");
    expect(resolveRegistryDir({ env: {}, cwd: "/w" })).toBe("/w/.immortal");
  });
});

describe("registration validation", () => {
  const base = sample();
  const cases: Array<
    [string, Partial<Record<keyof InstanceRegistration, unknown>>, RegistrationErrorCode, RegExp]
  > = [
    ["empty name", { instanceName: "" }, "INVALID_NAME", /non-empty/],
    ["leading dot", { instanceName: ".x" }, "INVALID_NAME", /must not start with '\.'/],
    ["leading dash", { instanceName: "-x" }, "INVALID_NAME", /must not start/],
    ["slash in name", { instanceName: "a/b" }, "INVALID_NAME", /may contain only/],
    ["space in name", { instanceName: "a b" }, "INVALID_NAME", /may contain only/],
    ["long name", { instanceName: "a".repeat(129) }, "INVALID_NAME", /longer than 128/],
    ["port 0", { receivePort: 0 }, "INVALID_PORT", /receivePort must be an integer from 1 to 65535, got 0/],
    ["port 70000", { sendPort: 70000 }, "INVALID_PORT", /sendPort .* got 70000/],
    ["fractional port", { icPort: 1.5 }, "INVALID_PORT", /icPort/],
    ["string port", { receivePort: "2000" }, "INVALID_PORT", /got "2000"/],
    ["same ports", { sendPort: 2000 }, "PORT_CONFLICT", /receivePort and sendPort are both 2000/],
    ["ic port clash", { icPort: 2001 }, "PORT_CONFLICT", /sendPort and icPort are both 2001/],
    [
      "negative version",
      { currentVersion: -1 },
      "INVALID_VERSION",
      /currentVersion must be a non-negative integer/,
    ],
    ["upgrade below current", { currentVersion: 2, upgradeVersion: 1 }, "VERSION_ORDER", /must not be lower/],
    ["bad replica", { replicas: [0] }, "INVALID_REPLICA", /positive integers/],
    ["duplicate replica", { replicas: [1, 1] }, "INVALID_REPLICA", /listed twice/],
    [
      "override for unlisted replica",
      { replicaOverrides: { "2": {} } },
      "INVALID_REPLICA",
      /unlisted replica "2"/,
    ],
    ["zero trigger", { logTriggerSizeMB: 0 }, "INVALID_TRIGGER_SIZE", /logTriggerSizeMB/],
    ["createService X", { createService: "X" }, "INVALID_CREATE_SERVICE", /A \(auto\), N .* or Y/],
    ["empty log", { logDir: "" }, "INVALID_LOG_DIR", /logDir/],
    ["bad host", { host: "a b" }, "INVALID_HOST", /host/],
    ["bad flag", { activeActive: "yes" }, "INVALID_FIELD", /activeActive must be true or false/],
    ["bad identity", { registrationId: "x" }, "INVALID_FIELD", /registrationId must be a UUID/],
  ];
  it.each(cases)("%s", (_label, change, code, message) => {
    let caught: unknown;
    try {
      validateRegistration({ ...base, ...change });
    } catch (e) {
      caught = e;
    }
    expect(caught).toBeInstanceOf(RegistrationError);
    expect((caught as RegistrationError).code).toBe(code);
    expect((caught as RegistrationError).message).toMatch(message);
  });

  it("checks replica ports against the instance's own", () => {
    expect(() =>
      validateRegistration({ ...base, replicas: [1], replicaOverrides: { "1": { receivePort: 2001 } } }),
    ).toThrow(/replica 1 of "server": receivePort and sendPort are both 2001/);
    const ok = validateRegistration({
      ...base,
      replicas: [3, 1],
      replicaOverrides: { "1": { receivePort: 3000, sendPort: 3001, icPort: 3500 } },
    });
    expect(ok.replicas).toEqual([1, 3]);
  });

  it("put refuses an invalid record and stores nothing", async () => {
    await expect(registry.put({ ...sample(), upgradeVersion: -1 })).rejects.toBeInstanceOf(RegistrationError);
    expect(await registry.list()).toEqual([]);
  });
});
