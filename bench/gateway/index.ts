// bench/gateway: the Quartet gateway beside HAProxy, in front of the same 3 worker processes,
// and the 3 workers called directly (the load split over them, as the proxies split it).
// WorkerService.Compute with no extra rounds (the worker's cheapest unary method), h2load
// with 64 connections: Connect JSON over HTTP/1.1, Connect binary over h2c (one stream per
// connection, as HTTP/1.1 has).
//
// Per round and protocol: each side's peak req/s (the order of the sides rotates by round),
// then the p99 of every side at half of the gateway's peak of that round (h2load --rps), so
// the p99 the gateway adds is measured at a load it holds. Ratios are medians of per-round
// ratios: on a shared 2-core machine only figures taken minutes apart compare.
//
// The half load arrives spread over time, not in bursts: one h2load starts every connection's
// --rps timer at the same instant, so all 64 send together (measured: 64 requests within
// 1 ms, every 1/rps), and a p99 read that way is the time to drain a 64-request burst, i.e.
// 64 x the proxy's CPU per request, at any average rate. `spreadGroups` h2load processes of
// a few connections each, started at staggered phases of the request period, offer the
// same average rate as a steady stream.
import { readFileSync, rmSync, writeFileSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as delay } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { create, toBinary } from "@bufbuild/protobuf";
import { ComputeRequestSchema } from "@quartet/proto/quartet/worker/v1/worker_pb";
import { type ServiceProcess, startServiceProcess } from "@quartet/server/testing";
import { type Figure, median, report } from "../lib/report.ts";
import { ensureCommands, h2load } from "../lib/tools.ts";
import { type HAProxy, startHAProxy } from "./haproxy.ts";

ensureCommands({ h2load: "nghttp2-client", haproxy: "haproxy" });

const seconds = Number(process.env.BENCH_SECONDS ?? 5);
const warmupSeconds = Number(process.env.BENCH_WARMUP_SECONDS ?? 5);
const rounds = Number(process.env.BENCH_ROUNDS ?? 3);
const connections = 64;
/** h2load processes the half load is split over (default 16: bursts of 4 requests at most; 1 is one h2load, all 64 at once). */
const spreadGroups = Number(process.env.BENCH_SPREAD_GROUPS ?? 16);
// BENCH_PROFILE=<dir>: the gateway runs with --cpu-prof and writes its profile there on exit.
const profileDir = process.env.BENCH_PROFILE;
const here = (p: string) => fileURLToPath(new URL(p, import.meta.url));
const procedure = "/quartet.worker.v1.WorkerService/Compute";
const service = "quartet.worker.v1.WorkerService";
// Telemetry off everywhere: this measures the proxy, not the OpenTelemetry SDK.
const env = { OTEL_SDK_DISABLED: "true" };

const dir = tmpdir();
const jsonBody = join(dir, "quartet-gateway-bench.json");
const binBody = join(dir, "quartet-gateway-bench.bin");
const logFile = (group: number) => join(dir, `quartet-gateway-bench-${process.pid}-${group}.log`);
writeFileSync(jsonBody, JSON.stringify({ input: "x" }));
writeFileSync(
  binBody,
  toBinary(ComputeRequestSchema, create(ComputeRequestSchema, { input: "x" })),
);
const protocols = {
  h1: { h1: true, body: jsonBody, contentType: "application/json" },
  h2c: { h1: false, body: binBody, contentType: "application/proto" },
} as const;
type Protocol = keyof typeof protocols;
const protocolNames = Object.keys(protocols) as Protocol[];
const sideNames = ["direct", "haproxy", "quartet", "nodeproxy"] as const;
type Side = (typeof sideNames)[number];
/** Where each side listens, and the processes whose CPU per request the bench reports. */
type Targets = Record<
  Side,
  { urls: Record<Protocol, string[]>; proxyPid?: number; workerPids: number[] }
>;

/** User + system CPU time of a process (all its threads) so far, in ms (10 ms ticks). */
const cpuMs = (pid: number) => {
  const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
  return (Number(fields[11]) + Number(fields[12])) * 10;
};
const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);

/** A percentile of the request times in h2load logs (lines: start us, status, duration us), in ms. */
function percentileOfLogs(files: string[], p: number): number {
  const times = files
    .flatMap((file) => readFileSync(file, "utf8").split("\n").filter(Boolean))
    .map((line) => Number(line.split("\t")[2]))
    .sort((a, b) => a - b);
  for (const file of files) rmSync(file, { force: true });
  if (times.length === 0) return Number.NaN;
  return times[Math.min(times.length - 1, Math.floor(p * times.length))]! / 1000;
}

/** `total` split into `parts` near-equal whole parts, larger first (64 over 3: 22, 21, 21). */
const split = (total: number, parts: number) =>
  Array.from({ length: parts }, (_, i) => Math.floor(total / parts) + (i < total % parts ? 1 : 0));

/**
 * One load run against a side: as fast as it goes, or at `rpsPerClient` per connection. The
 * 64 connections are split evenly over the side's addresses (the direct side has one per
 * worker, so the workers share the load as they do behind a proxy).
 */
async function load(
  targets: Targets,
  side: Side,
  protocol: Protocol,
  secs: number,
  rpsPerClient?: number,
) {
  const p = protocols[protocol];
  const { proxyPid, workerPids } = targets[side];
  const urls = targets[side].urls[protocol];
  const proxyBefore = proxyPid === undefined ? 0 : cpuMs(proxyPid);
  const workersBefore = sum(workerPids.map(cpuMs));
  const run = (url: string, clients: number, log?: string) =>
    h2load({
      url: url + procedure,
      seconds: secs,
      clients,
      h1: p.h1,
      bodyFile: p.body,
      headers: { "content-type": p.contentType, "connect-protocol-version": "1" },
      ...(rpsPerClient !== undefined ? { rps: rpsPerClient, logFile: log } : {}),
    });
  const perUrl = split(connections, urls.length);
  let results: Awaited<ReturnType<typeof run>>[];
  let p99Ms = Number.NaN;
  if (rpsPerClient === undefined)
    results = await Promise.all(urls.map((url, i) => run(url, perUrl[i]!)));
  else {
    // Each address's connections in groups of at most connections / spreadGroups; group g
    // starts g/groups of a request period after the first (see the top).
    const perGroup = Math.max(1, Math.floor(connections / spreadGroups));
    const groups = urls.flatMap((url, i) =>
      split(perUrl[i]!, Math.ceil(perUrl[i]! / perGroup)).map((clients) => ({ url, clients })),
    );
    const periodMs = 1000 / rpsPerClient;
    results = await Promise.all(
      groups.map(async ({ url, clients }, g) => {
        await delay((g * periodMs) / groups.length);
        return run(url, clients, logFile(g));
      }),
    );
    p99Ms = percentileOfLogs(
      groups.map((_, g) => logFile(g)),
      0.99,
    );
  }
  const result = {
    reqPerSec: sum(results.map((r) => r.reqPerSec)),
    p99Ms,
    succeeded: sum(results.map((r) => r.succeeded)),
    failed: sum(results.map((r) => r.failed)),
  };
  // h2load counts the requests still in flight when the duration ends as failed.
  if (result.failed > connections) {
    throw new Error(`${side} ${protocol}: ${result.failed} of ${result.succeeded} requests failed`);
  }
  // h2load's 1 s warm-up requests cost CPU too: count them at the measured rate.
  const served = result.succeeded * (1 + 1 / secs);
  return {
    ...result,
    proxyCpuUs:
      proxyPid === undefined ? Number.NaN : ((cpuMs(proxyPid) - proxyBefore) * 1000) / served,
    workersCpuUs: ((sum(workerPids.map(cpuMs)) - workersBefore) * 1000) / served,
  };
}

const runs: Record<string, number[]> = {};
const push = (key: string, value: number) => {
  runs[key] ??= [];
  runs[key].push(value);
};

async function measure(targets: Targets): Promise<void> {
  for (const protocol of protocolNames) {
    for (const side of sideNames) await load(targets, side, protocol, warmupSeconds);
  }
  for (let round = 1; round <= rounds; round++) {
    // Rotate which side goes first, so a drift of the machine within a round hits each alike.
    const order = sideNames.map((_, i) => sideNames[(i + round) % sideNames.length]!);
    for (const protocol of protocolNames) {
      const peak = {} as Record<Side, number>;
      for (const side of order) {
        const result = await load(targets, side, protocol, seconds);
        peak[side] = result.reqPerSec;
        push(`${side}/${protocol}/peak`, peak[side]);
        if (side !== "direct") push(`${side}/${protocol}/proxy_cpu`, result.proxyCpuUs);
        push(`${side}/${protocol}/workers_cpu`, result.workersCpuUs);
      }
      const half = peak.quartet / 2;
      const p99 = {} as Record<Side, number>;
      for (const side of order) {
        p99[side] = (await load(targets, side, protocol, seconds, half / connections)).p99Ms;
        push(`${side}/${protocol}/p99_at_half_quartet_peak`, p99[side]);
      }
      push(`quartet_vs_haproxy/${protocol}`, peak.quartet / peak.haproxy);
      push(`quartet_vs_direct/${protocol}`, peak.quartet / peak.direct);
      push(`haproxy_vs_direct/${protocol}`, peak.haproxy / peak.direct);
      push(`quartet/${protocol}/p99_added`, p99.quartet - p99.direct);
      push(`haproxy/${protocol}/p99_added`, p99.haproxy - p99.direct);
      push(`nodeproxy/${protocol}/p99_added`, p99.nodeproxy - p99.direct);
      push(`quartet_vs_nodeproxy/${protocol}`, peak.quartet / peak.nodeproxy);
      push(`half_quartet_peak/${protocol}`, half);
      console.log(
        `round ${round} ${protocol}: peak req/s direct ${Math.round(peak.direct)}, haproxy ${Math.round(peak.haproxy)}, quartet ${Math.round(peak.quartet)}, nodeproxy ${Math.round(peak.nodeproxy)} ` +
          `(${(peak.quartet / peak.haproxy).toFixed(3)}x haproxy); p99 at ${Math.round(half)} req/s: ` +
          `direct ${p99.direct.toFixed(2)} ms, haproxy ${p99.haproxy.toFixed(2)} ms, quartet ${p99.quartet.toFixed(2)} ms, nodeproxy ${p99.nodeproxy.toFixed(2)} ms`,
      );
    }
  }
}

const loadBefore = loadavg()[0]!;
// Everything started is stopped in the finally below, also when a later start fails.
const started: ServiceProcess[] = [];
const startProcess = async (entry: string, args: string[], nodeArgs: string[] = []) => {
  const p = await startServiceProcess(here(entry), args, { env, nodeArgs });
  started.push(p);
  return p;
};
let haproxy: HAProxy | undefined;
try {
  const workers = await Promise.all(
    [1, 2, 3].map((i) =>
      startProcess("../../services/worker/src/main.ts", ["--port", "0", "--id", `w${i}`]),
    ),
  );
  const workerRoute = ["--route", `${service}=${workers.map((w) => w.url).join(",")}`];
  const gateway = await startProcess(
    "../../services/balancer/src/main.ts",
    ["--port", "0", ...workerRoute],
    profileDir ? ["--cpu-prof", "--cpu-prof-dir", profileDir] : [],
  );
  const nodeProxy = await startProcess("./node-proxy.ts", workerRoute);
  haproxy = await startHAProxy(workers.map((w) => new URL(w.url)));
  const direct = workers.map((w) => w.url);
  const workerPids = workers.map((w) => w.pid);
  await measure({
    direct: { urls: { h1: direct, h2c: direct }, workerPids },
    haproxy: {
      urls: { h1: [haproxy.h1Url], h2c: [haproxy.h2cUrl] },
      proxyPid: haproxy.pid,
      workerPids,
    },
    quartet: { urls: { h1: [gateway.url], h2c: [gateway.url] }, proxyPid: gateway.pid, workerPids },
    nodeproxy: {
      urls: { h1: [nodeProxy.url], h2c: [nodeProxy.url] },
      proxyPid: nodeProxy.pid,
      workerPids,
    },
  });
} finally {
  await haproxy?.stop();
  // SIGTERM lets a profiled gateway write its profile.
  await Promise.all(started.map((p) => p.kill("SIGTERM")));
}
const loadAfter = loadavg()[0]!;

const figures: Record<string, Figure> = {};
const ratios: Record<string, number> = {};
for (const [key, values] of Object.entries(runs)) {
  if (key.includes("_vs_")) ratios[key] = median(values);
  else if (key.endsWith("/peak") || key.startsWith("half_"))
    figures[key] = { value: median(values), unit: "req/s" };
  else if (key.endsWith("_cpu")) figures[key] = { value: median(values), unit: "us CPU/req" };
  else figures[key] = { value: median(values), unit: "ms" };
}
figures.load_average_1m_before = { value: loadBefore, unit: "runnable" };
figures.load_average_1m_after = { value: loadAfter, unit: "runnable" };
report("gateway", figures, ratios, [
  `h2load, ${connections} connections (one stream each on h2c), Connect JSON over HTTP/1.1 (h1) and Connect binary over h2c, WorkerService.Compute with no extra rounds; 3 worker processes, telemetry off (OTEL_SDK_DISABLED)`,
  "sides: direct = the 3 workers called directly, the 64 connections split over them (22, 21, 21); haproxy = HAProxy 2.6 mode http, round robin over the 3 workers (h1 frontend -> h1 backends with http-reuse always; h2c frontend -> h2 backends); quartet = the gateway (services/balancer) routing to the 3 workers (unary Connect calls over keep-alive HTTP/1.1 whatever the caller speaks, streams and gRPC over one h2c session per worker); nodeproxy = the floor of a proxy on Node (bench/gateway/node-proxy.ts: node:http and node:http2 servers, undici keep-alive HTTP/1.1 to the workers, round robin, nothing else)",
  `${rounds} rounds after a ${warmupSeconds} s warm-up of every side; per round and protocol each side's peak (${seconds} s, order rotating), then each side's p99 at half of that round's gateway peak (h2load --rps per connection, over h2load processes of at most ${Math.floor(connections / spreadGroups)} connections each, at staggered phases, so requests arrive spread over time instead of 64 at once); figures and ratios are medians over rounds (ratios of the same round)`,
  "p99_added = that side's p99 minus the p99 of the workers called directly at the same offered load",
  "proxy_cpu: CPU per request of the proxy process (the gateway, HAProxy's threads, the Node proxy) at peak; workers_cpu: of the workers behind it (from /proc, 10 ms ticks)",
  `the machine is shared by other work: 1-minute load average ${loadBefore.toFixed(1)} at the start, ${loadAfter.toFixed(1)} at the end`,
]);
