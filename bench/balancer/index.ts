// calls/s through the balanced transport over 3 worker processes against plain transports to
// the same workers rotated by hand, in one run; plus the picker quality figures (quality.ts).
//
// Each side is its own client process (client.ts). Both run at the same time, pinned to one
// CPU while the workers have the other: the client CPU is the bottleneck and the kernel splits
// it evenly, so the calls/s ratio is the inverse ratio of client CPU per call, and the drift of
// a shared machine hits both sides alike. Alternating sides in one process instead swung the
// ratio by +-10% between runs here. Every round starts fresh clients (their own JIT luck).
import { execFile } from "node:child_process";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { type ServiceProcess, startServiceProcess } from "@quartet/server/testing";
import { type Figure, median, report } from "../lib/report.ts";
import { ensureCommands, pairedCpus, pinned, pinToCpu } from "../lib/tools.ts";
import { measureQuality } from "./quality.ts";

ensureCommands({ taskset: "util-linux" });

const here = dirname(fileURLToPath(import.meta.url));
const entry = resolve(here, "../../services/worker/src/main.ts");
const WARMUP_MS = Number(process.env.BENCH_WARMUP_MS ?? 2_000);
const MEASURE_MS = Number(process.env.BENCH_MEASURE_MS ?? 5_000);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 7);
// The two clients share one CPU; the workers run on another.
const { shared: clientCpu, other: workerCpu } = pairedCpus();
const run = promisify(execFile);

type Side = "balanced" | "plain";
interface Measured {
  calls: number;
  ms: number;
  cpuUs: number;
}

async function runClient(side: Side, urls: string[]): Promise<Measured> {
  const args = [resolve(here, "client.ts"), side, String(WARMUP_MS), String(MEASURE_MS), ...urls];
  const { stdout } = await run(...pinned(clientCpu, process.execPath, args));
  return JSON.parse(stdout.trim().split("\n").at(-1)!) as Measured;
}

const workers: ServiceProcess[] = [];
try {
  workers.push(
    ...(await Promise.all(
      ["w1", "w2", "w3"].map((id) => startServiceProcess(entry, ["--port", "0", "--id", id])),
    )),
  );
  if (workerCpu !== undefined) for (const w of workers) pinToCpu(w.pid, workerCpu);
  const urls = workers.map((w) => w.url);
  const totals: Record<Side, Measured> = {
    balanced: { calls: 0, ms: 0, cpuUs: 0 },
    plain: { calls: 0, ms: 0, cpuUs: 0 },
  };
  const ratios: number[] = [];
  const cpuRatios: number[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    // Alternate which client is spawned first.
    const [balanced, plain] =
      round % 2 === 0
        ? await Promise.all([runClient("balanced", urls), runClient("plain", urls)])
        : (await Promise.all([runClient("plain", urls), runClient("balanced", urls)])).reverse();
    for (const [side, m] of [
      ["balanced", balanced],
      ["plain", plain],
    ] as const) {
      totals[side].calls += m.calls;
      totals[side].ms += m.ms;
      totals[side].cpuUs += m.cpuUs;
    }
    const rate = (m: Measured) => (m.calls * 1000) / m.ms;
    ratios.push(rate(balanced) / rate(plain));
    cpuRatios.push(plain.cpuUs / plain.calls / (balanced.cpuUs / balanced.calls));
    console.log(
      `round ${round + 1}: balanced ${rate(balanced).toFixed(0)}/s ` +
        `(${(balanced.cpuUs / balanced.calls).toFixed(1)} us CPU/call), plain ${rate(plain).toFixed(0)}/s ` +
        `(${(plain.cpuUs / plain.calls).toFixed(1)} us CPU/call)`,
    );
  }
  const balancedRate = (totals.balanced.calls * 1000) / totals.balanced.ms;
  const plainRate = (totals.plain.calls * 1000) / totals.plain.ms;
  const quality = await measureQuality();
  const figures: Record<string, Figure> = {
    "balanced/unary_calls": { value: balancedRate, unit: "calls/s" },
    "plain_rotated/unary_calls": { value: plainRate, unit: "calls/s" },
    "balanced/client_cpu": {
      value: totals.balanced.cpuUs / totals.balanced.calls,
      unit: "us/call",
    },
    "plain_rotated/client_cpu": { value: totals.plain.cpuUs / totals.plain.calls, unit: "us/call" },
    ...quality.figures,
  };
  report(
    "balancer",
    figures,
    {
      "balanced_vs_plain_rotated/unary": balancedRate / plainRate,
      "balanced_vs_plain_rotated/unary_median_round": median(ratios),
      "balanced_vs_plain_rotated/client_cpu_per_call_median_round": median(cpuRatios),
    },
    [
      `3 worker processes (pinned to CPU ${workerCpu ?? "(none)"}), Compute(iterations=1); two client processes at once, pinned to CPU ${clientCpu ?? "(none)"}, 32 concurrent callers each; ${ROUNDS} rounds of fresh clients, ${WARMUP_MS} ms warm-up, ${MEASURE_MS} ms measured`,
      "balanced: round robin, grpc.health.v1 Watch on, outlier detection on; plain: one connect-node HTTP/2 transport per worker, rotated per call",
      "calls/s figures are per client while sharing one CPU with the other client",
      "client_cpu ratio: plain's client CPU per call over balanced's (above 1: balanced is cheaper)",
      ...quality.notes,
    ],
  );
} finally {
  await Promise.all(workers.map((w) => w.kill("SIGKILL")));
}
