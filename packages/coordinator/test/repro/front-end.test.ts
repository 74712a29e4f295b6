// The DebugInstance front ends' parsing: AMBROSIA's spellings (-c/--checkpoint, -cv/--currentVersion,
// -tu/--testingUpgrade) and our --stop-at, without a registration (AMBROSIA needs none for DebugInstance).
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { resolveCoordinatorOptions, resolveDebugOptions } from "../../src/cli/coordinator-command.js";
import { UsageError } from "../../src/cli/errors.js";
import { createRegistration, FolderRegistry } from "../../src/registry/index.js";
import { CheckpointNotFoundError, ReproCoordinator } from "../../src/repro/index.js";

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "immortal-repro-cli-"));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("DebugInstance options", () => {
  it("reads AMBROSIA's spellings, = and space forms alike, and --stop-at", async () => {
    const registry = FolderRegistry.open({ dir: join(dir, "reg") });
    const o = await resolveDebugOptions(
      [
        "-i=server",
        "-rp=2000",
        "-sp",
        "2001",
        "-l=/logs",
        "-c=3",
        "--currentVersion",
        "1",
        "--stop-at",
        "41",
      ],
      registry,
      dir,
    );
    expect(o).toEqual({
      instanceName: "server",
      receivePort: 2000,
      sendPort: 2001,
      logDir: "/logs",
      checkpoint: 3,
      currentVersion: 1,
      testingUpgrade: false,
      stopAt: 41,
    });
    const long = await resolveDebugOptions(
      [
        "--instanceName=server",
        "--receivePort=2000",
        "--sendPort=2001",
        "--log=/logs",
        "--checkpoint=2",
        "-tu",
        "-stopAt=0",
      ],
      registry,
      dir,
    );
    expect(long).toMatchObject({ checkpoint: 2, currentVersion: 0, testingUpgrade: true, stopAt: 0 });
    expect(
      await resolveDebugOptions(["-i=s", "-rp=1", "-sp=2", "-l=/x", "--exact"], registry, dir),
    ).toMatchObject({
      exact: true,
    });
    // AMBROSIA's default checkpoint is 1.
    expect(await resolveDebugOptions(["-i=s", "-rp=1", "-sp=2", "-l=/x"], registry, dir)).toMatchObject({
      checkpoint: 1,
    });
  });

  it("refuses a bad checkpoint or stop-at number, and missing ports of an unregistered instance", async () => {
    const registry = FolderRegistry.open({ dir: join(dir, "reg") });
    await expect(resolveDebugOptions(["-i=s", "-rp=1", "-sp=2", "-c=0"], registry, dir)).rejects.toThrow(
      UsageError,
    );
    await expect(
      resolveDebugOptions(["-i=s", "-rp=1", "-sp=2", "--stop-at=-1"], registry, dir),
    ).rejects.toThrow(UsageError);
    await expect(resolveDebugOptions(["-i=s", "-sp=2"], registry, dir)).rejects.toThrow(
      /--receivePort \(-rp\)/,
    );
  });
});

describe("the coordinator's determinism options", () => {
  it("--strictDeterminism and --noDeterminismDigests reach the engine; neither is set by default", async () => {
    const registry = FolderRegistry.open({ dir: join(dir, "reg") });
    await registry.put(
      createRegistration({ instanceName: "s", receivePort: 3000, sendPort: 3001, icPort: 3002, logDir: dir }),
    );
    const plain = await resolveCoordinatorOptions(["-i", "s"], registry, dir);
    expect(plain.strictDeterminism).toBeUndefined();
    expect(plain.noDeterminismDigests).toBeUndefined();
    const both = await resolveCoordinatorOptions(
      ["-i", "s", "--strictDeterminism", "--noDeterminismDigests", "--keepCheckpoints", "5"],
      registry,
      dir,
    );
    expect(both).toMatchObject({ strictDeterminism: true, noDeterminismDigests: true, keepCheckpoints: 5 });
  });
});

describe("ReproCoordinator.open", () => {
  it("names the checkpoints that exist when the one asked for does not", async () => {
    const open = (checkpoint: number) =>
      ReproCoordinator.open({
        instanceName: "server",
        logDir: dir,
        currentVersion: 0,
        checkpoint,
        receivePort: 0,
        sendPort: 0,
      });
    const err = await open(4).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CheckpointNotFoundError);
    expect((err as CheckpointNotFoundError).fatalCode).toBe(2); // AMBROSIA's MissingCheckpoint
    expect((err as Error).message).toMatch(/checkpoint 4 does not exist: .*server_0 holds no checkpoint/);
  });
});
