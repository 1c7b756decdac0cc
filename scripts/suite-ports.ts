// The ports of `npm start` relative to QUARTET_PORT_BASE (scripts/start.ts), and how a test
// finds a base whose ports are all free so it can run a whole suite beside any other.
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { portFree } from "@quartet/server/testing";

/** How long `startSuite` waits for every service to be ready (about 10 s on a quiet machine). */
const readyTimeoutMs = 60_000;

/** Consensus members, broker, workers, gateway, supervisor. */
export const suiteOffsets = [-99, -98, -97, 0, 101, 102, 103, 980, 981];

/**
 * The first port of the kernel's ephemeral range, from which it picks the local port of every
 * outgoing connection and of `listen(0)`. Suite ports stay below it: a port in that range that
 * is free when checked can be taken by any test's client connection before the suite binds it,
 * and the service that lost it restarts, and fails, until the test times out.
 */
function firstEphemeralPort(): number {
  try {
    const range = readFileSync("/proc/sys/net/ipv4/ip_local_port_range", "utf8");
    return Number(range.trim().split(/\s+/)[0]) || 32_768;
  } catch {
    return 32_768;
  }
}

const lowestBase = 10_100;
const highestBase = firstEphemeralPort() - 1 - Math.max(...suiteOffsets);

/** A base whose suite ports are all free now: a walk seeded by `seed`, so a run is reproducible. */
export async function freeSuiteBase(seed: number): Promise<number> {
  for (let tries = 0; tries < 50; tries++) {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    const base = lowestBase + (seed % (highestBase - lowestBase));
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
    // Bounded, so a suite that never gets ready fails with what it printed (and is stopped),
    // not with the test's bare timeout.
    const timer = setTimeout(() => {
      if (npm.pid !== undefined) process.kill(-npm.pid, "SIGKILL");
      reject(new Error(`npm start was not ready after ${readyTimeoutMs} ms:\n${output}`));
    }, readyTimeoutMs);
    const onData = (chunk: Buffer) => {
      output += chunk;
      if (output.includes("services are ready")) {
        clearTimeout(timer);
        resolve();
      }
    };
    npm.stdout!.on("data", onData);
    npm.stderr!.on("data", onData);
    npm.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`npm start exited (${code}):\n${output}`));
    });
  });
  return { npm, base, dataDir, output: () => output };
}
