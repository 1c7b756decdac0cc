import { defineConfig } from "vitest/config";

// Each test spawns several CLI processes (about 0.3 s of startup each on a loaded machine).
export default defineConfig({ test: { testTimeout: 60_000, hookTimeout: 60_000 } });
