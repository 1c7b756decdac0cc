import { fileURLToPath } from "node:url";
import { defineConfig } from "vitest/config";

// Tests run in Node from the package root (vite.config.ts's root is the browser app).
export default defineConfig({
  root: fileURLToPath(new URL(".", import.meta.url)),
  test: {
    include: ["test/**/*.test.ts"],
    // The browser test starts the whole suite; its waits are for page states, these are caps.
    testTimeout: 60_000,
    hookTimeout: 120_000,
    // One file at a time: both browser tests may build dist/ (npm start does too), and the
    // suite alone keeps two cores busy.
    fileParallelism: false,
  },
});
