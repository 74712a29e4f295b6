#!/usr/bin/env node
// Drop-in for AMBROSIA's `Ambrosia` admin executable (RegisterInstance, AddReplica, DebugInstance).
import { runAmbrosiaProcess } from "../dist/cli/main.js";

await runAmbrosiaProcess(process.argv.slice(2));
