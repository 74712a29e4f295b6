#!/usr/bin/env node
// The `immortal` command: registration verbs and the coordinator front end.
import { runImmortalProcess } from "../dist/index.js";

await runImmortalProcess(process.argv.slice(2));
