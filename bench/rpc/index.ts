// bench/rpc: what the Quartet server stack costs. WorkerService.Compute with no extra rounds on
// a real worker process (telemetry interceptors, limits, CORS, health, metrics) against a bare
// connect-node server doing the same work, with tracing off, on, and sampled at 10%.
import { readFileSync, writeFileSync } from "node:fs";
import http from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { create, toBinary } from "@bufbuild/protobuf";
import { ComputeRequestSchema } from "@quartet/proto/quartet/worker/v1/worker_pb";
import { type ServiceProcess, startServiceProcess } from "@quartet/server/testing";
import { type Figure, report } from "../lib/report.ts";
import { ensureCommands, h2load } from "../lib/tools.ts";

ensureCommands({ h2load: "nghttp2-client" });

const seconds = Number(process.env.BENCH_SECONDS ?? 3);
const rounds = Number(process.env.BENCH_ROUNDS ?? 5);
const here = (p: string) => fileURLToPath(new URL(p, import.meta.url));
const procedure = "/quartet.worker.v1.WorkerService/Compute";

// A sink that accepts OTLP exports and discards them, so "tracing on" pays for export too.
const sink = http.createServer((req, res) => {
  req.resume();
  req.on("end", () => res.writeHead(200, { "content-type": "application/x-protobuf" }).end());
});
await new Promise<void>((r) => sink.listen(0, "127.0.0.1", r));
const sinkUrl = `http://127.0.0.1:${(sink.address() as { port: number }).port}`;

const modes = {
  off: { OTEL_TRACES_SAMPLER: "always_off" },
  on: { OTEL_TRACES_SAMPLER: "always_on", OTEL_EXPORTER_OTLP_ENDPOINT: sinkUrl },
  sampled10: {
    OTEL_TRACES_SAMPLER: "traceidratio",
    OTEL_TRACES_SAMPLER_ARG: "0.1",
    OTEL_EXPORTER_OTLP_ENDPOINT: sinkUrl,
  },
} as const;

const dir = tmpdir();
const jsonBody = join(dir, "quartet-rpc-bench.json");
const binBody = join(dir, "quartet-rpc-bench.bin");
writeFileSync(jsonBody, JSON.stringify({ input: "x" }));
writeFileSync(
  binBody,
  toBinary(ComputeRequestSchema, create(ComputeRequestSchema, { input: "x" })),
);

const protocols = {
  "connect-json-h1": {
    h1: true,
    clients: 64,
    streams: 1,
    body: jsonBody,
    contentType: "application/json",
  },
  "connect-proto-h2c": {
    h1: false,
    clients: 4,
    streams: 16,
    body: binBody,
    contentType: "application/proto",
  },
} as const;

const children: ServiceProcess[] = [];
const start = async (entry: string, args: string[], env: Record<string, string> = {}) => {
  const p = await startServiceProcess(entry, args, { env });
  children.push(p);
  return p;
};

const bare = await start(here("./bare-server.ts"), []);
const bareH2 = String((await bare.waitForLog((l) => l.msg === "listening")).h2url);
const workers: Record<string, ServiceProcess> = {};
for (const [mode, env] of Object.entries(modes)) {
  workers[mode] = await start(
    here("../../services/worker/src/main.ts"),
    ["--port", "0", "--id", mode],
    env,
  );
}

/** User + system CPU time of a process so far, in ms (Linux clock ticks are 10 ms). */
const cpuMs = (pid: number) => {
  const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
  return (Number(fields[11]) + Number(fields[12])) * 10;
};
const pids: Record<string, number> = { bare: bare.pid };
for (const [mode, w] of Object.entries(workers)) pids[`quartet-tracing-${mode}`] = w.pid;

// Per round, each side's throughput and server CPU per request; ratios are taken within a
// round (neighbouring runs) and the median over rounds is reported, which damps the drift
// of a shared machine better than comparing bests.
const perRound: Record<string, { reqPerSec: number; cpuUsPerReq: number }[]> = {};
try {
  for (let round = 1; round <= rounds; round++) {
    for (const [protocol, p] of Object.entries(protocols)) {
      const targets: [string, string][] = [
        ["bare", p.h1 ? bare.url : bareH2],
        ...Object.entries(workers).map(([mode, w]): [string, string] => [
          `quartet-tracing-${mode}`,
          w.url,
        ]),
      ];
      // Rotate the order each round so no side always runs first or last.
      const shift = (round - 1) % targets.length;
      for (const [side, base] of [...targets.slice(shift), ...targets.slice(0, shift)]) {
        const cpuBefore = cpuMs(pids[side]!);
        const result = h2load({
          url: base + procedure,
          seconds,
          clients: p.clients,
          streams: p.streams,
          h1: p.h1,
          bodyFile: p.body,
          headers: { "content-type": p.contentType, "connect-protocol-version": "1" },
        });
        // h2load counts the requests still in flight when the duration ends as failed.
        if (result.failed > p.clients * p.streams) {
          throw new Error(`${side} ${protocol}: ${result.failed} requests failed`);
        }
        // Warm-up requests also cost CPU: count them at the measured rate.
        const served = result.succeeded * (1 + 1 / seconds);
        const cpuUsPerReq = ((cpuMs(pids[side]!) - cpuBefore) * 1000) / served;
        const key = `${side}/${protocol}`;
        perRound[key] ??= [];
        perRound[key].push({ reqPerSec: result.reqPerSec, cpuUsPerReq });
        console.log(
          `round ${round} ${key}: ${Math.round(result.reqPerSec)} req/s, ${cpuUsPerReq.toFixed(1)} us CPU/req`,
        );
      }
    }
  }
} finally {
  await Promise.all(children.map((c) => c.kill("SIGKILL")));
  sink.close();
}

const median = (xs: number[]) => {
  const sorted = [...xs].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
};
const figures: Record<string, Figure> = {};
for (const [key, runs] of Object.entries(perRound)) {
  figures[key] = { value: median(runs.map((r) => r.reqPerSec)), unit: "req/s" };
  figures[`${key}/cpu`] = { value: median(runs.map((r) => r.cpuUsPerReq)), unit: "us CPU/req" };
}
const ratios: Record<string, number> = {};
for (const protocol of Object.keys(protocols)) {
  const bareRuns = perRound[`bare/${protocol}`]!;
  for (const mode of Object.keys(modes)) {
    const runs = perRound[`quartet-tracing-${mode}/${protocol}`]!;
    ratios[`quartet_tracing_${mode}_vs_bare/${protocol}`] = median(
      runs.map((r, i) => r.reqPerSec / bareRuns[i]!.reqPerSec),
    );
    // Throughput if CPU-bound: bare's CPU per request over Quartet's.
    ratios[`quartet_tracing_${mode}_vs_bare_cpu/${protocol}`] = median(
      runs.map((r, i) => bareRuns[i]!.cpuUsPerReq / r.cpuUsPerReq),
    );
  }
}
report("rpc", figures, ratios, [
  `h2load, ${seconds}s per run after 1s warm-up, ${rounds} alternating rounds; ratios are medians of per-round ratios`,
  "_cpu ratios: the server process's user+system CPU per request (from /proc), bare over Quartet",
  "connect-json-h1: 64 HTTP/1.1 connections; connect-proto-h2c: 4 connections x 16 streams",
]);
