#!/usr/bin/env node
// Drop-in for AMBROSIA's `ImmortalCoordinator` executable: bindings spawn this name with AMBROSIA's options.
import { runImmortalCoordinatorProcess } from "../dist/cli/main.js";

await runImmortalCoordinatorProcess(process.argv.slice(2));
