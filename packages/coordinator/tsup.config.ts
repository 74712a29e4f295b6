import { defineConfig } from "tsup";

export default defineConfig({
  // `coordinator` is its own entry because the CLI loads the engine with a runtime import of
  // "../coordinator.js" (see src/cli/engine.ts), so dist/coordinator.js must exist next to dist/cli/.
  entry: { index: "src/index.ts", "cli/main": "src/cli/main.ts", coordinator: "src/coordinator.ts" },
  format: ["esm"],
  dts: { entry: { index: "src/index.ts", "cli/main": "src/cli/main.ts" } },
  sourcemap: true,
  clean: true,
  target: "node20",
});
