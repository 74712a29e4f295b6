import { readdir } from "node:fs/promises";
import { join, resolve } from "node:path";
import { RegistrationError, RegistryCorruptError, UnknownInstanceError } from "./errors.js";
import {
  type FileLockOptions,
  readJsonFile,
  unlinkDurable,
  withFileLock,
  writeFileAtomic,
} from "./fs-atomic.js";
import type {
  InstanceMeta,
  InstanceRegistration,
  MetaMutator,
  RegistrationMutator,
  Registry,
} from "./types.js";
import { validateInstanceName, validateMeta, validateRegistration } from "./validate.js";

/** Environment variable naming the registry folder (overridden by an explicit `--registry`). */
export const REGISTRY_ENV_VAR = "IMMORTAL_HOME";
/** Folder used when neither `--registry` nor IMMORTAL_HOME is given, relative to the working directory. */
export const DEFAULT_REGISTRY_DIRNAME = ".immortal";

export interface RegistryDirOptions {
  /** Explicit folder (the `--registry` option); wins over the environment. */
  dir?: string;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
}

/** The absolute registry folder: explicit dir, else $IMMORTAL_HOME, else `./.immortal` under the cwd. */
export function resolveRegistryDir(opts: RegistryDirOptions = {}): string {
  const cwd = opts.cwd ?? process.cwd();
  const fromEnv = (opts.env ?? process.env)[REGISTRY_ENV_VAR];
  const chosen = opts.dir ?? (fromEnv !== undefined && fromEnv !== "" ? fromEnv : DEFAULT_REGISTRY_DIRNAME);
  return resolve(cwd, chosen);
}

export type FolderRegistryOptions = FileLockOptions;

/**
 * The embedded registry: one folder on local disk, `instances/<name>.json` for registrations and
 * `meta/<name>.json` for the IC's runtime metadata. Every write is an atomic replace, and every
 * read-modify-write runs under a per-instance lock file, so any number of processes can share the folder.
 */
export class FolderRegistry implements Registry {
  readonly location: string;

  constructor(
    dir: string,
    private readonly lockOptions: FolderRegistryOptions = {},
  ) {
    this.location = resolve(dir);
  }

  /** The registry at the default location (see `resolveRegistryDir`). */
  static open(opts: RegistryDirOptions & FolderRegistryOptions = {}): FolderRegistry {
    return new FolderRegistry(resolveRegistryDir(opts), { timeoutMs: opts.timeoutMs, staleMs: opts.staleMs });
  }

  private registrationPath(name: string): string {
    return join(this.location, "instances", `${validateInstanceName(name)}.json`);
  }

  private metaPath(name: string): string {
    return join(this.location, "meta", `${validateInstanceName(name)}.json`);
  }

  // Registration and metadata have separate locks: the IC updating its metadata never waits for an operator's
  // re-registration, and the two files are never changed together.
  private lockPath(kind: "reg" | "meta", name: string): string {
    return join(this.location, "locks", `${validateInstanceName(name)}.${kind}.lock`);
  }

  private async readRegistration(path: string): Promise<InstanceRegistration | undefined> {
    const read = await readJsonFile(path);
    if (read === undefined) return undefined;
    if ("error" in read) throw new RegistryCorruptError(path, `not JSON (${read.error})`);
    try {
      return validateRegistration(read.value);
    } catch (e) {
      if (e instanceof RegistrationError) throw new RegistryCorruptError(path, e.message);
      throw e;
    }
  }

  async get(name: string): Promise<InstanceRegistration | undefined> {
    const path = this.registrationPath(name);
    const reg = await this.readRegistration(path);
    if (reg !== undefined && reg.instanceName !== name) {
      throw new RegistryCorruptError(path, `it holds instance "${reg.instanceName}"`);
    }
    return reg;
  }

  async require(name: string): Promise<InstanceRegistration> {
    const reg = await this.get(name);
    if (reg === undefined) throw new UnknownInstanceError(name, this.location);
    return reg;
  }

  private async write(reg: InstanceRegistration): Promise<InstanceRegistration> {
    const stored = validateRegistration({ ...reg, updatedAt: new Date().toISOString() });
    await writeFileAtomic(this.registrationPath(stored.instanceName), `${JSON.stringify(stored, null, 2)}\n`);
    return stored;
  }

  async put(reg: InstanceRegistration): Promise<InstanceRegistration> {
    const valid = validateRegistration(reg);
    return withFileLock(this.lockPath("reg", valid.instanceName), () => this.write(valid), this.lockOptions);
  }

  async list(): Promise<InstanceRegistration[]> {
    let files: string[];
    try {
      files = await readdir(join(this.location, "instances"));
    } catch (e) {
      if (typeof e === "object" && e !== null && "code" in e && e.code === "ENOENT") return [];
      throw e;
    }
    const names = files
      .filter((f) => f.endsWith(".json") && !f.startsWith("."))
      .map((f) => f.slice(0, -".json".length));
    const regs = await Promise.all(names.map((n) => this.get(n)));
    // A registration removed between readdir and read is simply gone.
    return regs
      .filter((r): r is InstanceRegistration => r !== undefined)
      .sort((a, b) => (a.instanceName < b.instanceName ? -1 : a.instanceName > b.instanceName ? 1 : 0));
  }

  async remove(name: string): Promise<boolean> {
    const existed = await withFileLock(
      this.lockPath("reg", name),
      () => unlinkDurable(this.registrationPath(name)),
      this.lockOptions,
    );
    await withFileLock(
      this.lockPath("meta", name),
      () => unlinkDurable(this.metaPath(name)),
      this.lockOptions,
    );
    return existed;
  }

  async update(name: string, mutator: RegistrationMutator): Promise<InstanceRegistration | undefined> {
    validateInstanceName(name);
    return withFileLock(
      this.lockPath("reg", name),
      async () => {
        const current = await this.get(name);
        const next = await mutator(current);
        if (next === undefined) return current;
        if (next.instanceName !== name) {
          throw new RegistrationError(
            "NAME_MISMATCH",
            `update of "${name}" returned a registration for "${next.instanceName}"`,
          );
        }
        return this.write(next);
      },
      this.lockOptions,
    );
  }

  async getMeta(name: string): Promise<InstanceMeta> {
    const path = this.metaPath(name);
    const read = await readJsonFile(path);
    if (read === undefined) return {};
    if ("error" in read) throw new RegistryCorruptError(path, `not JSON (${read.error})`);
    try {
      return validateMeta(read.value);
    } catch (e) {
      if (e instanceof RegistrationError) throw new RegistryCorruptError(path, e.message);
      throw e;
    }
  }

  async updateMeta(name: string, mutator: MetaMutator): Promise<InstanceMeta> {
    validateInstanceName(name);
    return withFileLock(
      this.lockPath("meta", name),
      async () => {
        const next = validateMeta(await mutator(await this.getMeta(name)));
        await writeFileAtomic(this.metaPath(name), `${JSON.stringify(next, null, 2)}\n`);
        return next;
      },
      this.lockOptions,
    );
  }
}
