import { mkdirSync, writeFileSync } from "node:fs";
import { cpus } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

/** One measured number, e.g. `{ value: 7800, unit: "req/s" }`. */
export interface Figure {
  value: number;
  unit: string;
}

export interface BenchResult {
  bench: string;
  date: string;
  machine: { cpus: number; node: string };
  /** Keyed `<side>/<case>`, e.g. `quartet/closed` or `opossum/open`. */
  figures: Record<string, Figure>;
  /** What BENCHMARKS.md quotes, e.g. `quartet_vs_opossum/closed: 2.4`. */
  ratios: Record<string, number>;
  notes?: string[];
}

const resultsDir = join(dirname(fileURLToPath(import.meta.url)), "..", "results");

/** Median of a non-empty list (the mean of the middle two for an even count). */
export function median(xs: readonly number[]): number {
  const sorted = [...xs].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** The q-quantile (0..1) of an ascending list, nearest rank; NaN for an empty one. */
export function quantile(sorted: ArrayLike<number>, q: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;
}

/** Prints a readable table and writes `bench/results/<bench>.json`. */
export function report(
  bench: string,
  figures: Record<string, Figure>,
  ratios: Record<string, number>,
  notes: string[] = [],
): BenchResult {
  const result: BenchResult = {
    bench,
    date: new Date().toISOString(),
    machine: { cpus: cpus().length, node: process.version },
    figures,
    ratios,
    ...(notes.length > 0 ? { notes } : {}),
  };
  const rows = Object.entries(figures).map(([name, f]) => [name, formatNumber(f.value), f.unit]);
  const ratioRows = Object.entries(ratios).map(([name, r]) => [name, r.toFixed(3), "x"]);
  const all = [...rows, ...ratioRows];
  const width = Math.max(...all.map((r) => r[0]!.length), 10);
  console.log(`\n${bench}  (${result.machine.cpus} cpus, node ${result.machine.node})`);
  for (const [name, value, unit] of rows)
    console.log(`  ${name!.padEnd(width)}  ${value!.padStart(14)} ${unit}`);
  if (ratioRows.length > 0) console.log("  ratios:");
  for (const [name, value] of ratioRows)
    console.log(`  ${name!.padEnd(width)}  ${value!.padStart(14)} x`);
  for (const note of notes) console.log(`  note: ${note}`);
  mkdirSync(resultsDir, { recursive: true });
  writeFileSync(join(resultsDir, `${bench}.json`), `${JSON.stringify(result, null, 2)}\n`);
  return result;
}

function formatNumber(value: number): string {
  if (Math.abs(value) >= 100) return Math.round(value).toLocaleString("en-US");
  return value.toPrecision(4);
}

/**
 * Runs `fn` repeatedly for `durationMs` of wall time and returns operations per second.
 * `fn` returns how many operations it performed.
 */
export async function throughput(
  durationMs: number,
  fn: () => Promise<number> | number,
): Promise<number> {
  const start = performance.now();
  let ops = 0;
  let elapsed = 0;
  while (elapsed < durationMs) {
    ops += await fn();
    elapsed = performance.now() - start;
  }
  return (ops * 1000) / elapsed;
}
