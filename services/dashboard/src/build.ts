// Builds the dashboard (vite build into dist/) when dist/ is missing or older than any of its
// sources: npm start calls this so the gateway always serves the app as the sources are.
import { spawn } from "node:child_process";
import { readdirSync, statSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = fileURLToPath(new URL("..", import.meta.url));
/** What the bundle is made of: the app, its build config, and the generated code it imports. */
const sources = [
  join(here, "app"),
  join(here, "vite.config.ts"),
  join(here, "package.json"),
  join(here, "../../packages/proto/src/gen"),
];

function newest(path: string): number {
  const stat = statSync(path, { throwIfNoEntry: false });
  if (!stat) return 0;
  if (!stat.isDirectory()) return stat.mtimeMs;
  let max = stat.mtimeMs;
  for (const entry of readdirSync(path, { recursive: true, withFileTypes: true })) {
    if (entry.isFile()) max = Math.max(max, statSync(join(entry.parentPath, entry.name)).mtimeMs);
  }
  return max;
}

/** Why dist/ needs a build ("missing", "stale"), or undefined when it is up to date. */
export function dashboardBuildNeeded(dist = join(here, "dist")): "missing" | "stale" | undefined {
  const built = statSync(join(dist, "index.html"), { throwIfNoEntry: false });
  if (!built) return "missing";
  return Math.max(...sources.map(newest)) > built.mtimeMs ? "stale" : undefined;
}

/** Runs `vite build` on this Node; rejects with vite's output when it fails. */
export function buildDashboard(): Promise<void> {
  const vite = join(
    dirname(createRequire(import.meta.url).resolve("vite/package.json")),
    "bin/vite.js",
  );
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [vite, "build", "--logLevel", "warn"], {
      cwd: here,
      stdio: ["ignore", "pipe", "pipe"],
    });
    let output = "";
    child.stdout.on("data", (d) => (output += d));
    child.stderr.on("data", (d) => (output += d));
    child.once("error", reject);
    child.once("exit", (code) =>
      code === 0
        ? resolve()
        : reject(new Error(`dashboard build failed (vite exit ${code}):\n${output}`)),
    );
  });
}
