import { execFile, execFileSync, spawnSync } from "node:child_process";
import { availableParallelism } from "node:os";
import { promisify } from "node:util";

/** Installs Debian packages that provide the given commands, if any is missing. */
export function ensureCommands(packages: Record<string, string>): void {
  const missing = Object.entries(packages).filter(
    ([command]) => spawnSync("which", [command]).status !== 0,
  );
  if (missing.length === 0) return;
  const names = [...new Set(missing.map(([, pkg]) => pkg))];
  console.log(`installing ${names.join(", ")} (apt-get)`);
  execFileSync("apt-get", ["update", "-qq"], { stdio: "inherit" });
  execFileSync("apt-get", ["install", "-y", "-qq", ...names], { stdio: "inherit" });
}

export interface H2loadResult {
  reqPerSec: number;
  /** Request latency percentiles in ms, when h2load printed them. */
  meanMs: number;
  succeeded: number;
  failed: number;
}

const execFileAsync = promisify(execFile);

/**
 * Runs h2load for `seconds` against `url` and parses its summary. `h1` selects HTTP/1.1;
 * otherwise h2c with prior knowledge. `cpu` pins h2load to one CPU (taskset), so that it
 * does not compete with the servers it measures.
 */
export async function h2load(options: {
  url: string;
  seconds: number;
  warmupSeconds?: number;
  clients: number;
  streams?: number;
  h1?: boolean;
  bodyFile: string;
  headers: Record<string, string>;
  threads?: number;
  cpu?: number;
}): Promise<H2loadResult> {
  const args = [
    "-D",
    String(options.seconds),
    "--warm-up-time",
    String(options.warmupSeconds ?? 1),
    "-c",
    String(options.clients),
    "-m",
    String(options.streams ?? 1),
    "-t",
    String(options.threads ?? 1),
    "-d",
    options.bodyFile,
    ...Object.entries(options.headers).flatMap(([k, v]) => ["-H", `${k}: ${v}`]),
    ...(options.h1 ? ["--h1"] : []),
    options.url,
  ];
  const [command, argv] = pinned(options.cpu, "h2load", args);
  const { stdout: out } = await execFileAsync(command, argv, {
    encoding: "utf8",
    maxBuffer: 16 << 20,
  });
  const rps = /finished in [\d.]+\w+, ([\d.]+) req\/s/.exec(out);
  const reqs = /requests: \d+ total, \d+ started, \d+ done, (\d+) succeeded, (\d+) failed/.exec(
    out,
  );
  const time = /time for request:\s+([\d.]+)(us|ms|s)\s+([\d.]+)(us|ms|s)\s+([\d.]+)(us|ms|s)/.exec(
    out,
  );
  const status = /status codes: (\d+) 2xx/.exec(out);
  if (!rps || !reqs) throw new Error(`cannot parse h2load output:\n${out}`);
  const toMs = (v: string, unit: string) =>
    Number(v) * (unit === "us" ? 0.001 : unit === "s" ? 1000 : 1);
  const failed = Number(reqs[2]) + (status ? Number(reqs[1]) - Number(status[1]) : 0);
  return {
    reqPerSec: Number(rps[1]),
    meanMs: time ? toMs(time[5]!, time[6]!) : Number.NaN,
    succeeded: Number(reqs[1]),
    failed,
  };
}

/** Pins a running process and all its threads to one CPU (taskset). */
export function pinToCpu(pid: number, cpu: number): void {
  execFileSync("taskset", ["-a", "-p", "-c", String(cpu), String(pid)], { stdio: "ignore" });
}

/**
 * How a bench that compares two sides splits the machine: both sides share `shared` (so the
 * kernel gives each half of it, and drift hits both alike), and whatever drives or serves
 * them runs on `other`. Both undefined on a one-CPU machine: nothing is pinned.
 */
export function pairedCpus(): { shared: number | undefined; other: number | undefined } {
  const count = availableParallelism();
  return count > 1 ? { shared: count - 1, other: 0 } : { shared: undefined, other: undefined };
}

/** `command args`, run through taskset on `cpu` when one is given. */
export function pinned(
  cpu: number | undefined,
  command: string,
  args: string[],
): [string, string[]] {
  return cpu === undefined ? [command, args] : ["taskset", ["-c", String(cpu), command, ...args]];
}
