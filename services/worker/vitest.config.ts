import { defineConfig } from "vitest/config";

// These tests start real server processes; on a loaded 2-core CI machine a start alone can
// take several seconds, past vitest's default 5 s. Tests still end as soon as their awaited
// event happens: the bound only decides when a stuck test is reported.
export default defineConfig({ test: { testTimeout: 30_000, hookTimeout: 60_000 } });
