// bench/rpc: what the Quartet server stack costs. WorkerService.Compute with no extra rounds on
// a real worker process (telemetry interceptors, limits, CORS, health, metrics) against a bare
// connect-node server doing the same work, with tracing off, on (spans exported over OTLP),
// on but unexported (what the SDK's spans cost without the export), and sampled at 10%.
// A second pair sets the bare server against itself with Quartet's interceptor chain added
// and nothing else: what the chain costs, apart from the rest of the stack.
//
// The two servers of a pair are measured at the same time, sharing one CPU (h2load runs on
// the other): the kernel gives each half of that CPU, so their throughput ratio is the
// inverse ratio of their CPU cost per request, and the drift of a shared machine hits both
// alike. Measuring them one after the other instead swung the ratio by +-20% between runs
// here; three servers sharing the CPU doubled the spread of a round. Each round starts fresh
// processes, so one process's JIT luck does not decide.
import { writeFileSync } from "node:fs";
import http from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { create, toBinary } from "@bufbuild/protobuf";
import { ComputeRequestSchema } from "@quartet/proto/quartet/worker/v1/worker_pb";
import { type ServiceProcess, startServiceProcess } from "@quartet/server/testing";
import { type Figure, median, report } from "../lib/report.ts";
import { cpuMs, ensureCommands, h2load, listFromEnv, pairedCpus, pinToCpu } from "../lib/tools.ts";

ensureCommands({ h2load: "nghttp2-client", taskset: "util-linux" });

const seconds = Number(process.env.BENCH_SECONDS ?? 8);
const warmupSeconds = Number(process.env.BENCH_WARMUP_SECONDS ?? 15);
const rounds = Number(process.env.BENCH_ROUNDS ?? 5);
// The servers share one CPU; the h2load processes run on another.
const { shared: serverCpu, other: loadCpu } = pairedCpus();
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
  // Every span recorded and ended, none exported: what the OTLP export costs is `on` less this.
  on_unexported: { OTEL_TRACES_SAMPLER: "always_on", OTEL_TRACES_EXPORTER: "none" },
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

interface Target {
  process: ServiceProcess;
  url: string;
}

/** The bare server; with a mode, with Quartet's interceptor chain traced in that mode. */
const startBare = async (h1: boolean, chainMode?: keyof typeof modes): Promise<Target> => {
  const p =
    chainMode === undefined
      ? await startServiceProcess(here("./bare-server.ts"), [])
      : await startServiceProcess(here("./bare-server.ts"), ["--chain"], {
          env: modes[chainMode],
        });
  const listening = await p.waitForLog((l) => l.msg === "listening");
  return { process: p, url: h1 ? p.url : String(listening.h2url) };
};
const startQuartet = async (mode: keyof typeof modes): Promise<Target> => {
  const p = await startServiceProcess(
    here("../../services/worker/src/main.ts"),
    ["--port", "0", "--id", mode],
    { env: modes[mode] },
  );
  return { process: p, url: p.url };
};

/** Loads every target at once for `secs`; per target: req/s and server CPU per request. */
const loadTogether = (
  targets: Target[],
  p: (typeof protocols)[keyof typeof protocols],
  secs: number,
) =>
  Promise.all(
    targets.map(async (t) => {
      const cpuBefore = cpuMs(t.process.pid);
      const result = await h2load({
        url: t.url + procedure,
        seconds: secs,
        clients: p.clients,
        streams: p.streams,
        h1: p.h1,
        bodyFile: p.body,
        headers: { "content-type": p.contentType, "connect-protocol-version": "1" },
        cpu: loadCpu,
      });
      // h2load counts the requests still in flight when the duration ends as failed.
      if (result.failed > p.clients * p.streams) {
        throw new Error(`${t.url}: ${result.failed} requests failed`);
      }
      // h2load's 1 s warm-up requests also cost CPU: count them at the measured rate.
      const served = result.succeeded * (1 + 1 / secs);
      return {
        reqPerSec: result.reqPerSec,
        cpuUsPerReq: ((cpuMs(t.process.pid) - cpuBefore) * 1000) / served,
      };
    }),
  );

// To iterate on one case: BENCH_MODES=off BENCH_PROTOCOLS=connect-proto-h2c BENCH_SUBJECTS=chain
// npm run bench -- rpc
const onlyModes = listFromEnv("BENCH_MODES", Object.keys(modes));
const onlyProtocols = listFromEnv("BENCH_PROTOCOLS", Object.keys(protocols));

/** What is set against bare: the whole Quartet worker, and bare with only the chain added. */
const allSubjects = [
  { name: "quartet", start: (_h1: boolean, mode: keyof typeof modes) => startQuartet(mode) },
  { name: "chain", start: startBare },
];
const onlySubjects = listFromEnv(
  "BENCH_SUBJECTS",
  allSubjects.map((s) => s.name),
);
const subjects = allSubjects.filter((s) => onlySubjects.includes(s.name));

interface Measured {
  reqPerSec: number;
  cpuUsPerReq: number;
}
const perRound: Record<string, Measured[]> = {};
const ratioRuns: Record<string, number[]> = {};
const push = <T>(map: Record<string, T[]>, key: string, value: T) => {
  map[key] ??= [];
  map[key].push(value);
};
for (let round = 1; round <= rounds; round++) {
  for (const [protocol, p] of Object.entries(protocols)) {
    if (!onlyProtocols.includes(protocol)) continue;
    for (const mode of Object.keys(modes) as (keyof typeof modes)[]) {
      if (!onlyModes.includes(mode)) continue;
      for (const subject of subjects) {
        const pair = await Promise.all([startBare(p.h1), subject.start(p.h1, mode)]);
        // Alternate which server h2load starts on first.
        const order = round % 2 === 0 ? pair : [pair[1], pair[0]];
        try {
          if (serverCpu !== undefined) for (const t of pair) pinToCpu(t.process.pid, serverCpu);
          await loadTogether(order, p, warmupSeconds);
          const measured = await loadTogether(order, p, seconds);
          const [bare, other] = round % 2 === 0 ? measured : [measured[1]!, measured[0]!];
          const name = `${subject.name}_tracing_${mode}`;
          push(perRound, `bare/${protocol}`, bare!);
          push(perRound, `${name}/${protocol}`, other!);
          push(ratioRuns, `${name}_vs_bare/${protocol}`, other!.reqPerSec / bare!.reqPerSec);
          push(
            ratioRuns,
            `${name}_vs_bare_cpu/${protocol}`,
            bare!.cpuUsPerReq / other!.cpuUsPerReq,
          );
          console.log(
            `round ${round} ${protocol} ${name}: bare ${Math.round(bare!.reqPerSec)} req/s ` +
              `(${bare!.cpuUsPerReq.toFixed(1)} us CPU/req), ${subject.name} ${Math.round(other!.reqPerSec)} req/s ` +
              `(${other!.cpuUsPerReq.toFixed(1)} us CPU/req): ${(other!.reqPerSec / bare!.reqPerSec).toFixed(3)}x`,
          );
        } finally {
          await Promise.all(pair.map((t) => t.process.kill("SIGKILL")));
        }
      }
    }
  }
}
sink.close();

const figures: Record<string, Figure> = {};
for (const [key, runs] of Object.entries(perRound)) {
  figures[key] = { value: median(runs.map((r) => r.reqPerSec)), unit: "req/s" };
  figures[`${key}/cpu`] = { value: median(runs.map((r) => r.cpuUsPerReq)), unit: "us CPU/req" };
}
const ratios: Record<string, number> = {};
for (const [key, runs] of Object.entries(ratioRuns)) ratios[key] = median(runs);
report("rpc", figures, ratios, [
  `pairs loaded at the same time, both pinned to CPU ${serverCpu ?? "(none)"}, h2load on CPU ${loadCpu ?? "(none)"}: bare with the Quartet worker (quartet_*), and bare with bare plus Quartet's interceptor chain (chain_*); ${rounds} rounds, each pair with fresh processes, ${warmupSeconds} s warm-up, then ${seconds} s measured`,
  "ratios: medians over rounds of each server over the bare server it was paired with (req/s), and of bare's CPU per request over the server's (_cpu)",
  "req/s figures are per server while sharing one CPU with the other: about half of what one server alone does",
  "connect-json-h1: 64 HTTP/1.1 connections; connect-proto-h2c: 4 connections x 16 streams",
]);
