import { spawn } from "node:child_process";
import { mkdtempSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { createRegistration, FolderRegistry, startCoordinator } from "@immortal/coordinator";
import pino from "pino";

const size = Number(process.argv[2]),
  window = Number(process.argv[3]),
  total = Number(process.argv[4]);
const root = mkdtempSync(path.join(os.tmpdir(), "imm-prof-"));
const registry = FolderRegistry.open({ dir: path.join(root, "reg") });
const logDir = path.join(root, "logs");
const ports = { receivePort: 45001, sendPort: 45002, icPort: 45003 };
await registry.put(createRegistration({ instanceName: "bench", ...ports, logDir }));
const ic = await startCoordinator({
  instanceName: "bench",
  registry,
  ...ports,
  logDir,
  currentVersion: 0,
  logTriggerSizeMB: 1 << 20,
  out: () => {},
  logger: pino({ level: "warn" }),
});
const b = spawn(
  "node",
  [
    ...(process.env.PROF_BINDING ? ["--cpu-prof", "--cpu-prof-dir=/tmp/prof/binding"] : []),
    "/work/main/packages/coordinator/test/support/raw-binding.mjs",
    JSON.stringify({ name: "bench", ...ports, role: "flood", size, window, total, exitWhenDone: true }),
  ],
  { stdio: ["ignore", "pipe", "inherit"] },
);
b.stdout.on("data", (d) => {
  const s = String(d);
  if (s.includes("RATE")) {
    console.log(s.trim(), JSON.stringify(ic.stats().session.commit));
    setTimeout(() => process.exit(0), 1500);
  }
});
