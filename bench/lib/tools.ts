import { execFile, execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { availableParallelism, tmpdir } from "node:os";
import { join } from "node:path";
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

/**
 * A new directory under the system's temporary directory, for data that must be synced to a
 * real disk, and that disk's file system type; refuses tmpfs, where fsync costs nothing.
 */
export function diskTempDir(prefix: string): { dir: string; fsType: string } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  const fsType = execFileSync("df", ["-T", dir], { encoding: "utf8" })
    .trim()
    .split("\n")
    .at(-1)!
    .split(/\s+/)[1]!;
  if (fsType === "tmpfs") {
    rmSync(dir, { recursive: true, force: true });
    throw new Error(`${dir} is on tmpfs: set TMPDIR to a directory on a real disk`);
  }
  return { dir, fsType };
}

export interface H2loadResult {
  reqPerSec: number;
  /** Request latency percentiles in ms, when h2load printed them. */
  meanMs: number;
  /** 99th percentile of request time in ms, when a `logFile` was given. */
  p99Ms: number;
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
  /** Requests per second per client (h2load --rps): a fixed load instead of as fast as it goes. */
  rps?: number;
  /** Where h2load logs each measured request (its time gives `p99Ms`). */
  logFile?: string;
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
    ...(options.rps !== undefined ? ["--rps", String(options.rps)] : []),
    ...(options.logFile !== undefined ? ["--log-file", options.logFile] : []),
    options.url,
  ];
  // h2load appends to its log file: start each run with an empty one.
  if (options.logFile !== undefined) rmSync(options.logFile, { force: true });
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
    p99Ms: options.logFile !== undefined ? logPercentileMs(options.logFile, 0.99) : Number.NaN,
    succeeded: Number(reqs[1]),
    failed,
  };
}

/** A percentile of the request times in an h2load log (lines: start us, status, duration us). */
function logPercentileMs(file: string, p: number): number {
  const times = readFileSync(file, "utf8")
    .split("\n")
    .filter(Boolean)
    .map((line) => Number(line.split("\t")[2]))
    .sort((a, b) => a - b);
  if (times.length === 0) return Number.NaN;
  return times[Math.min(times.length - 1, Math.floor(p * times.length))]! / 1000;
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

/**
 * The names a `BENCH_*` variable lists (comma-separated), or `all` when it is not set; a name
 * not in `all` is an error that lists the known ones.
 */
export function listFromEnv(name: string, all: string[]): string[] {
  const wanted = process.env[name]?.split(",").filter(Boolean) ?? all;
  const unknown = wanted.filter((w) => !all.includes(w));
  if (unknown.length > 0)
    throw new Error(`${name}: unknown ${unknown.join(", ")}; known: ${all.join(", ")}`);
  return wanted;
}

/** User + system CPU time of a process so far, in ms (Linux clock ticks are 10 ms). */
export function cpuMs(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
  return (Number(fields[11]) + Number(fields[12])) * 10;
}
