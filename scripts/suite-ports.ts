// The ports of `npm start` relative to QUARTET_PORT_BASE (scripts/start.ts), and how a test
// finds a base whose ports are all free so it can run a whole suite beside any other.
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { portFree } from "@quartet/server/testing";

/** Consensus members, broker, workers, gateway, supervisor. */
export const suiteOffsets = [-99, -98, -97, 0, 101, 102, 103, 980, 981];

/** A base whose suite ports are all free now: a walk seeded by `seed`, so a run is reproducible. */
export async function freeSuiteBase(seed: number): Promise<number> {
  for (let tries = 0; tries < 50; tries++) {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    const base = 20_000 + (seed % 30_000);
    if ((await Promise.all(suiteOffsets.map((o) => portFree(base + o)))).every(Boolean))
      return base;
  }
  throw new Error("no port base with every suite port free");
}

export interface RunningSuite {
  npm: ChildProcess;
  base: number;
  dataDir: string;
  /** Everything npm start printed so far (stdout and stderr). */
  output: () => string;
}

/**
 * `npm start` as a user runs it (a real npm in its own process group) on free ports and an
 * empty data directory named after `name`; resolves once it prints that every service is ready.
 */
export async function startSuite(seed: number, name: string): Promise<RunningSuite> {
  const base = await freeSuiteBase(seed);
  const dataDir = mkdtempSync(join(tmpdir(), `quartet-${name}-`));
  const npm = spawn("npm", ["start"], {
    cwd: join(import.meta.dirname, ".."),
    detached: true,
    env: { ...process.env, QUARTET_PORT_BASE: String(base), QUARTET_DATA_DIR: dataDir },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  await new Promise<void>((resolve, reject) => {
    const onData = (chunk: Buffer) => {
      output += chunk;
      if (output.includes("services are ready")) resolve();
    };
    npm.stdout!.on("data", onData);
    npm.stderr!.on("data", onData);
    npm.once("exit", (code) => reject(new Error(`npm start exited (${code}):\n${output}`)));
  });
  return { npm, base, dataDir, output: () => output };
}
