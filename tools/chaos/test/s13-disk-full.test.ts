// Fault scenario 13: the disk fills up while logging, end to end. The instances' log folder is a small tmpfs
// (Linux, root: `mount -t tmpfs -o size=16m`), nearly filled with a filler file before a PTI run starts. Pass: the
// server's coordinator stops accepting and reports the full disk (the run cannot finish meanwhile); once the filler
// is removed it recovers and the run completes with exact counts, nothing lost. Where mounting is impossible (not
// root, no tmpfs, a container without the capability) the test is skipped with the reason printed, never passed.
import { execFileSync } from "node:child_process";
import { cpSync, mkdirSync, rmSync, statfsSync, writeFileSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { checkPti, type PtiConfig, serverReports } from "../src/pti.js";
import { onCleanup, pti, ptiDone, sleep, tmpDir } from "./support.js";

/** Mounts a tmpfs of `mb` MB at a fresh folder; the reason it cannot, as a string. */
function mountTmpfs(mb: number): { dir: string } | string {
  if (process.platform !== "linux") return `tmpfs needs Linux (this is ${process.platform})`;
  if (process.getuid?.() !== 0) return "mounting a tmpfs needs root";
  const dir = path.join(tmpDir("diskfull"), "mnt");
  mkdirSync(dir);
  try {
    execFileSync("mount", ["-t", "tmpfs", "-o", `size=${mb}m`, "tmpfs", dir], { stdio: "pipe" });
  } catch (err) {
    return `mount -t tmpfs failed: ${String((err as { stderr?: Buffer }).stderr ?? err).trim()}`;
  }
  onCleanup(() => {
    if (process.env.IMMORTAL_TEST_KEEP === "1") cpSync(dir, `${dir}-copy`, { recursive: true });
    execFileSync("umount", ["-l", dir], { stdio: "ignore" });
  });
  return { dir };
}

describe("scenario 13: disk full while logging", () => {
  it("the coordinator stops accepting, reports it, and recovers with nothing lost when space returns", async (ctx) => {
    const mounted = mountTmpfs(16);
    if (typeof mounted === "string") {
      console.warn(`[scenario 13] SKIPPED: ${mounted}`);
      ctx.skip();
      return;
    }
    const logDir = path.join(mounted.dir, "logs");
    mkdirSync(logDir);
    // Leave about 2 MB free: the first start's checkpoints fit, the 6 MB the server must log do not.
    const filler = path.join(mounted.dir, "filler");
    const fs = statfsSync(mounted.dir);
    writeFileSync(filler, Buffer.alloc(fs.bavail * fs.bsize - 2 * 1024 * 1024));
    const cfg: PtiConfig = { rounds: 3, bytesPerRound: 2 * 1024 * 1024, maxSize: 8192, stepBytes: 65536 };
    const c = await pti(cfg, { logDir });
    c.startAll();
    const server = c.get("server");
    await server.coordinator.waitFor(
      () => /disk full|ENOSPC/i.test(server.coordinator.log()),
      "the full disk to be reported",
      60_000,
    );
    const report = server.coordinator
      .log()
      .split("\n")
      .find((l) => /disk full|ENOSPC/i.test(l));
    console.log(`[scenario 13] reported: ${report}`);
    // While the disk stays full the run cannot finish: nothing is accepted that is not logged.
    await sleep(2000);
    expect(serverReports(c)).toEqual([]);
    rmSync(filler);
    await ptiDone(c, Number(process.env.S13_WAIT ?? 120_000));
    expect(checkPti(cfg, serverReports(c), server.binding.lines)).toEqual([]);
  }, 200_000);
});
