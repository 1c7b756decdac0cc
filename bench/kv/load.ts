// The load generator both sides share: closed-loop clients over one connection, latency
// percentiles, and the fsync counter (strace).
import { execFile } from "node:child_process";
import { PerformanceObserver } from "node:perf_hooks";
import { promisify } from "node:util";
import { quantile } from "../lib/report.ts";

/** 256-byte values, as the brief's comparison asks; the same bytes on both sides. */
export const value = Buffer.alloc(256, 0x61);

export interface LoadResult {
  opsPerSec: number;
  p50Ms: number;
  p99Ms: number;
  /** This process's own GC pauses during the window, in ms per second of it. */
  generatorGcMsPerSec: number;
  /**
   * The share of the calls at or above the p99 that were in flight while this process was
   * paused for GC: a pause holds every client's call open, so a p99 can be the load
   * generator's as much as the server's.
   */
  slowInGeneratorGc: number;
  /**
   * The p99 of the calls that were not in flight during one of this process's GC pauses: the
   * servers' tail without the load generator's (an estimate: the calls left out are chosen by
   * the generator's timing, not the servers').
   */
  p99OutsideGeneratorGcMs: number;
}

/**
 * `clients` closed-loop clients each call `op(i)` (i counts calls across clients) until
 * `seconds` have passed; returns ops/s and latency percentiles of the calls that finished.
 */
export async function closedLoop(
  clients: number,
  seconds: number,
  op: (i: number) => Promise<unknown>,
): Promise<LoadResult> {
  const starts: number[] = [];
  const latencies: number[] = [];
  const pauses: { startTime: number; duration: number }[] = [];
  const gc = new PerformanceObserver((list) => pauses.push(...list.getEntries()));
  gc.observe({ entryTypes: ["gc"] });
  let next = 0;
  const start = performance.now();
  const end = start + seconds * 1000;
  try {
    await Promise.all(
      Array.from({ length: clients }, async () => {
        while (performance.now() < end) {
          const t0 = performance.now();
          await op(next++);
          starts.push(t0);
          latencies.push(performance.now() - t0);
        }
      }),
    );
  } finally {
    pauses.push(...gc.takeRecords());
    gc.disconnect();
  }
  const elapsed = performance.now() - start;
  const sorted = Float64Array.from(latencies).sort();
  const p99Ms = quantile(sorted, 0.99);
  const inPause = (from: number, to: number) =>
    pauses.some((p) => p.startTime < to && p.startTime + p.duration > from);
  let slow = 0;
  let slowInPause = 0;
  const outsidePauses: number[] = [];
  latencies.forEach((ms, i) => {
    const during = inPause(starts[i]!, starts[i]! + ms);
    if (!during) outsidePauses.push(ms);
    if (ms < p99Ms) return;
    slow++;
    if (during) slowInPause++;
  });
  // The observer ran only for this window.
  const pausedMs = pauses.reduce((sum, p) => sum + p.duration, 0);
  return {
    opsPerSec: (latencies.length * 1000) / elapsed,
    p50Ms: quantile(sorted, 0.5),
    p99Ms,
    generatorGcMsPerSec: (pausedMs * 1000) / elapsed,
    slowInGeneratorGc: slow === 0 ? Number.NaN : slowInPause / slow,
    p99OutsideGeneratorGcMs: quantile(Float64Array.from(outsidePauses).sort(), 0.99),
  };
}

const execFileAsync = promisify(execFile);

/**
 * Counts the sync calls (fsync, fdatasync, msync, sync_file_range) every thread of `pid`
 * makes during `seconds`, with `strace -c`. strace stops the process at each traced call,
 * so the process runs slower while it is watched: compare syncs with the ops done in the
 * same window, not with an unwatched run.
 */
export async function countSyncs(
  pid: number,
  seconds: number,
): Promise<{ calls: Record<string, number>; total: number }> {
  const trace = "fsync,fdatasync,msync,sync_file_range";
  // SIGINT detaches strace, which then prints its summary table on stderr.
  const run = execFileAsync(
    "timeout",
    ["-s", "INT", String(seconds), "strace", "-f", "-c", "-e", `trace=${trace}`, "-p", String(pid)],
    { encoding: "utf8" },
  ).catch((e: { stderr?: string; code?: number }) => {
    // timeout exits 124 after the signal; the summary is still there.
    if (typeof e.stderr === "string" && e.stderr.includes("syscall")) return { stderr: e.stderr };
    throw e;
  });
  const { stderr } = await run;
  const calls: Record<string, number> = {};
  for (const line of stderr.split("\n")) {
    // % time  seconds  usecs/call  calls  [errors]  syscall
    const m = /^\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(?:\d+\s+)?(\w+)\s*$/.exec(line);
    if (m && m[2] !== "total") calls[m[2]!] = Number(m[1]);
  }
  return { calls, total: Object.values(calls).reduce((a, b) => a + b, 0) };
}
