#!/usr/bin/env node
// The README's demo: runs apps/hello with `immortal dev` (in-process coordinators, embedded storage), kills
// the whole process with SIGKILL mid-run, starts it again on the same data, and shows from the final state
// that nothing was lost or done twice.
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const immortal = path.join(here, "../../packages/cli/bin/immortal.mjs");
const entry = path.join(here, "dist/main.js");
const data = mkdtempSync(path.join(os.tmpdir(), "immortal-hello-"));
const visitors = Number(process.env.HELLO_VISITORS ?? 200);
const killAfter = Math.floor(visitors / 3);

function run(label, onLine) {
  const child = spawn(process.execPath, [immortal, "dev", entry, "--data", data], {
    env: { ...process.env, HELLO_VISITORS: String(visitors) },
    stdio: ["ignore", "pipe", "inherit"],
  });
  let buf = "";
  child.stdout.on("data", (d) => {
    buf += d;
    const lines = buf.split("\n");
    buf = lines.pop();
    for (const line of lines) onLine(line, child);
  });
  return new Promise((resolve) => child.on("exit", (code, signal) => resolve({ label, code, signal })));
}

const greetingsIn = { first: 0, second: 0 };
console.log(`Hello, Immortal — ${visitors} visitors, a greeter and a counter; data in ${data}\n`);
console.log("--- run 1 ---");
const first = await run("first", (line, child) => {
  if (line.startsWith("[greeter] Hello")) greetingsIn.first++;
  if (greetingsIn.first <= 5 || line.startsWith("[dev]") || line.startsWith("[main]")) console.log(line);
  else if (greetingsIn.first === 6 && line.startsWith("[greeter] Hello")) console.log("…");
  if (greetingsIn.first === killAfter && line.startsWith("[greeter] Hello")) {
    console.log(line);
    console.log(
      `\n*** SIGKILL after ${killAfter} greetings: no shutdown, no flush, nothing saved on the way out ***\n`,
    );
    child.kill("SIGKILL");
  }
});
console.log(`(run 1 ended by ${first.signal})\n`);

console.log("--- run 2, same data: the coordinators recover the instances from their logs ---");
let done;
const second = await run("second", (line, child) => {
  if (line.startsWith("[greeter] Hello")) greetingsIn.second++;
  if (greetingsIn.second <= 3 || line.startsWith("[dev]") || line.startsWith("[main]")) console.log(line);
  else if (greetingsIn.second === 4 && line.startsWith("[greeter] Hello")) console.log("…");
  const m = line.match(/DONE (\{.*\})/);
  if (m) {
    done = JSON.parse(m[1]);
    console.log(line);
    child.kill("SIGINT");
  }
});
rmSync(data, { recursive: true, force: true });

console.log(`\n(run 2 ended by ${second.signal ?? `exit ${second.code}`})`);
if (done === undefined) {
  console.log("FAILED: the greeter never finished");
  process.exit(1);
}
console.log(`
greetings printed live: ${greetingsIn.first} in run 1 + ${greetingsIn.second} in run 2 = ${greetingsIn.first + greetingsIn.second}
(a replay is silent: what was logged but not yet handled when the process died is handled during recovery)
the greeter's state: ${done.greeted} greetings; every visitor number from 1 to ${visitors} exactly once: ${done.exactlyOnce ? "yes" : "NO"}`);
process.exit(done.greeted === visitors && done.exactlyOnce ? 0 : 1);
