// calls/s through the balanced transport over 3 worker processes against plain transports to
// the same workers rotated by hand, measured in alternating rounds in one run; plus the
// picker quality figures (see quality.ts).
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { createClient, type Transport } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { createBalancedTransport, staticResolver } from "@quartet/balancer";
import { WorkerService } from "@quartet/proto/quartet/worker/v1/worker_pb";
import { type ServiceProcess, startServiceProcess } from "@quartet/server/testing";
import { type Figure, report } from "../lib/report.ts";
import { measureQuality } from "./quality.ts";

const here = dirname(fileURLToPath(import.meta.url));
const entry = resolve(here, "../../services/worker/src/main.ts");
const CONCURRENCY = 32;
const ROUND_MS = 1_500;
const ROUNDS = 8;

/** Closed loop: `CONCURRENCY` callers, each issuing Compute calls back to back for `ms`. */
async function closedLoop(
  next: () => ReturnType<typeof createClient<typeof WorkerService>>,
  ms: number,
) {
  const end = performance.now() + ms;
  let calls = 0;
  const cpu = process.cpuUsage();
  const start = performance.now();
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (performance.now() < end) {
        await next().compute({ iterations: 1, input: "bench" });
        calls++;
      }
    }),
  );
  const used = process.cpuUsage(cpu);
  return { calls, ms: performance.now() - start, cpuUs: used.user + used.system };
}

const workers: ServiceProcess[] = [];
try {
  workers.push(
    ...(await Promise.all(
      ["w1", "w2", "w3"].map((id) => startServiceProcess(entry, ["--port", "0", "--id", id])),
    )),
  );
  const balanced = createBalancedTransport({
    resolver: staticResolver(workers.map((w, i) => ({ id: `w${i + 1}`, address: w.url }))),
    picker: "round_robin",
  });
  const balancedClient = createClient(WorkerService, balanced);
  const plain: Transport[] = workers.map((w) =>
    createConnectTransport({ baseUrl: w.url, httpVersion: "2" }),
  );
  const plainClients = plain.map((t) => createClient(WorkerService, t));
  let turn = 0;
  const sides = {
    balanced: () => balancedClient,
    plain: () => plainClients[turn++ % plainClients.length]!,
  };
  // Warm up both sides (connections, JIT).
  await closedLoop(sides.balanced, 1_000);
  await closedLoop(sides.plain, 1_000);
  const totals = { balanced: { calls: 0, ms: 0, cpuUs: 0 }, plain: { calls: 0, ms: 0, cpuUs: 0 } };
  const ratios: number[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    // Alternate which side goes first so drift on the shared machine hits both alike.
    const order =
      round % 2 === 0 ? (["balanced", "plain"] as const) : (["plain", "balanced"] as const);
    const rate: Record<string, number> = {};
    for (const side of order) {
      const r = await closedLoop(sides[side], ROUND_MS);
      totals[side].calls += r.calls;
      totals[side].ms += r.ms;
      totals[side].cpuUs += r.cpuUs;
      rate[side] = (r.calls * 1000) / r.ms;
    }
    ratios.push(rate.balanced! / rate.plain!);
    console.log(
      `round ${round + 1}: balanced ${rate.balanced!.toFixed(0)}/s, plain ${rate.plain!.toFixed(0)}/s`,
    );
  }
  const balancedRate = (totals.balanced.calls * 1000) / totals.balanced.ms;
  const plainRate = (totals.plain.calls * 1000) / totals.plain.ms;
  const shares = balanced
    .stats()
    .map((s) => `${s.id}=${s.total}`)
    .join(" ");
  await balanced.close();
  const quality = await measureQuality();
  const figures: Record<string, Figure> = {
    "balanced/unary_calls": { value: balancedRate, unit: "calls/s" },
    "plain_rotated/unary_calls": { value: plainRate, unit: "calls/s" },
    // Client CPU per call: steadier than calls/s while other processes share the machine.
    "balanced/client_cpu": {
      value: totals.balanced.cpuUs / totals.balanced.calls,
      unit: "us/call",
    },
    "plain_rotated/client_cpu": { value: totals.plain.cpuUs / totals.plain.calls, unit: "us/call" },
    ...quality.figures,
  };
  const sorted = [...ratios].sort((a, b) => a - b);
  report(
    "balancer",
    figures,
    {
      "balanced_vs_plain_rotated/unary": balancedRate / plainRate,
      "balanced_vs_plain_rotated/unary_median_round": sorted[Math.floor(sorted.length / 2)]!,
      "balanced_vs_plain_rotated/client_cpu_per_call":
        totals.balanced.cpuUs / totals.balanced.calls / (totals.plain.cpuUs / totals.plain.calls),
    },
    [
      `3 worker processes, Compute(iterations=1), ${CONCURRENCY} concurrent callers, ${ROUNDS} alternating rounds of ${ROUND_MS} ms per side after 1 s warm-up each`,
      "balanced: round robin, grpc.health.v1 Watch on, outlier detection on; plain: one connect-node HTTP/2 transport per worker, rotated per call",
      `balanced calls per worker: ${shares}`,
      ...quality.notes,
    ],
  );
} finally {
  await Promise.all(workers.map((w) => w.kill("SIGKILL")));
}
