// bench/rpc: what the Quartet server stack costs. WorkerService.Compute with no extra rounds on
// a real worker process (telemetry interceptors, limits, CORS, health, metrics) against a bare
// connect-node server doing the same work, with tracing off, on, and sampled at 10%.
import { writeFileSync } from "node:fs";
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

const seconds = Number(process.env.BENCH_SECONDS ?? 5);
const rounds = Number(process.env.BENCH_ROUNDS ?? 2);
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

const best: Record<string, number> = {};
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
      for (const [side, base] of targets) {
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
        const key = `${side}/${protocol}`;
        best[key] = Math.max(best[key] ?? 0, result.reqPerSec);
        console.log(`round ${round} ${key}: ${Math.round(result.reqPerSec)} req/s`);
      }
    }
  }
} finally {
  await Promise.all(children.map((c) => c.kill("SIGKILL")));
  sink.close();
}

const figures: Record<string, Figure> = {};
for (const [key, value] of Object.entries(best)) figures[key] = { value, unit: "req/s" };
const ratios: Record<string, number> = {};
for (const protocol of Object.keys(protocols)) {
  for (const mode of Object.keys(modes)) {
    ratios[`quartet_tracing_${mode}_vs_bare/${protocol}`] =
      best[`quartet-tracing-${mode}/${protocol}`]! / best[`bare/${protocol}`]!;
  }
}
report("rpc", figures, ratios, [
  `h2load, ${seconds}s per run after 1s warm-up, best of ${rounds} alternating rounds`,
  "connect-json-h1: 64 HTTP/1.1 connections; connect-proto-h2c: 4 connections x 16 streams",
]);
