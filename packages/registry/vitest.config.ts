import { defineConfig } from "vitest/config";

// Real consensus processes: a loaded 2-core machine elects and commits slowly.
export default defineConfig({ test: { testTimeout: 60_000, hookTimeout: 120_000 } });
