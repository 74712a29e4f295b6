import { spawn } from "node:child_process";
import { mkdir, mkdtemp, readdir, rm, utimes, writeFile } from "node:fs/promises";
import { hostname, tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "tsup";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  createRegistration,
  FolderRegistry,
  RegistryLockTimeoutError,
  withFileLock,
} from "../../src/registry/index.js";

const here = dirname(fileURLToPath(import.meta.url));
const WRITERS = 8;
const INCREMENTS = 50;

let work: string;
let bundle: string;

// The child processes need plain JavaScript. Bundling just the registry (tsup's API, into a temp folder) keeps
// this test independent of the package's dist and of the rest of the package's sources.
beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), "immortal-registry-conc-"));
  await build({
    entry: { registry: join(here, "../../src/registry/index.ts") },
    outDir: join(work, "bundle"),
    format: ["esm"],
    platform: "node",
    target: "node20",
    config: false,
    dts: false,
    sourcemap: false,
    silent: true,
  });
  bundle = join(work, "bundle", "registry.js");
});

afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

const CHILD = `
import { FolderRegistry } from ${JSON.stringify("BUNDLE")};
const [dir, n] = process.argv.slice(2);
const registry = new FolderRegistry(dir);
for (let i = 0; i < Number(n); i++) {
  await registry.update("counter", (cur) => cur && { ...cur, currentVersion: cur.currentVersion + 1, upgradeVersion: cur.upgradeVersion + 1 });
  await registry.updateMeta("counter", (m) => ({ ...m, lastLogFile: (m.lastLogFile ?? 0) + 1 }));
}
`;

function run(script: string, args: string[]): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolveRun, reject) => {
    const child = spawn(process.execPath, [script, ...args], { stdio: ["ignore", "ignore", "pipe"] });
    let stderr = "";
    child.stderr.on("data", (d: Buffer) => {
      stderr += d.toString();
    });
    child.on("error", reject);
    child.on("close", (code) => resolveRun({ code, stderr }));
  });
}

describe("FolderRegistry under concurrent writers", () => {
  it(`${WRITERS} processes × ${INCREMENTS} read-modify-writes lose no update`, async () => {
    const dir = join(work, "shared");
    const registry = new FolderRegistry(dir);
    await registry.put(
      createRegistration({ instanceName: "counter", receivePort: 1, sendPort: 2, logDir: "/l" }),
    );
    const script = join(work, "child.mjs");
    await writeFile(script, CHILD.replace("BUNDLE", bundle.replaceAll("\\", "/")));
    const results = await Promise.all(
      Array.from({ length: WRITERS }, () => run(script, [dir, String(INCREMENTS)])),
    );
    for (const r of results) expect(r, r.stderr).toMatchObject({ code: 0 });
    const final = await registry.require("counter");
    expect(final.currentVersion).toBe(WRITERS * INCREMENTS);
    expect(final.upgradeVersion).toBe(WRITERS * INCREMENTS);
    expect((await registry.getMeta("counter")).lastLogFile).toBe(WRITERS * INCREMENTS);
    // Every writer cleaned up after itself: no temp files, no locks.
    expect(await readdir(join(dir, "instances"))).toEqual(["counter.json"]);
    expect(await readdir(join(dir, "locks"))).toEqual([]);
  });

  it("breaks the lock of a crashed holder (dead pid) instead of waiting forever", async () => {
    const dir = join(work, "crashed");
    const registry = new FolderRegistry(dir, { timeoutMs: 5_000 });
    await registry.put(
      createRegistration({ instanceName: "svc", receivePort: 1, sendPort: 2, logDir: "/l" }),
    );
    // A pid that surely is dead: a child that has already exited.
    const child = spawn(process.execPath, ["-e", ""]);
    const deadPid = child.pid!;
    await new Promise((r) => child.on("close", r));
    await mkdir(join(dir, "locks"), { recursive: true });
    const lock = join(dir, "locks", "svc.reg.lock");
    await writeFile(lock, JSON.stringify({ pid: deadPid, host: hostname(), token: "crashed" }));
    const started = Date.now();
    const updated = await registry.update("svc", (c) => c && { ...c, upgradeVersion: 7 });
    expect(updated?.upgradeVersion).toBe(7);
    expect(Date.now() - started).toBeLessThan(2_000);
    expect(await readdir(join(dir, "locks"))).toEqual([]);
  });

  it("breaks a lock older than staleMs even if its pid looks alive (pid reuse, other host)", async () => {
    const dir = join(work, "old");
    const lock = join(dir, "locks", "x.lock");
    await mkdir(dirname(lock), { recursive: true });
    await writeFile(lock, JSON.stringify({ pid: process.pid, host: "elsewhere", token: "old" }));
    const past = new Date(Date.now() - 60_000);
    await utimes(lock, past, past);
    await expect(withFileLock(lock, async () => "ran", { timeoutMs: 2_000, staleMs: 30_000 })).resolves.toBe(
      "ran",
    );
  });

  it("waits for a live holder and times out with a clear error", async () => {
    const dir = join(work, "live");
    const lock = join(dir, "locks", "y.lock");
    await mkdir(dirname(lock), { recursive: true });
    await writeFile(lock, JSON.stringify({ pid: process.pid, host: hostname(), token: "live" }));
    const err = await withFileLock(lock, async () => "ran", { timeoutMs: 200 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RegistryLockTimeoutError);
    expect((err as Error).message).toMatch(new RegExp(`held by pid ${process.pid} on `));
  });
});
