// bench/server-overhead: the CPU one unary call costs through serve(), against a bare
// connect-node server (connectNodeAdapter on a plain http2 server) answering the same trivial
// method: gRPC and Connect binary over h2c, Connect JSON over HTTP/1.1. Telemetry is off on
// both sides (BENCH_TRACING=on records serve()'s spans): bench/rpc measures tracing; this
// measures the runtime every service runs on (limits, interceptors, default timeout, call
// budgets, the one-port listener).
//
// As in bench/rpc, the two servers are loaded at the same time, both pinned to one CPU while
// the h2load processes run on the other, so the kernel gives each half of that CPU and their
// throughput ratio is the inverse ratio of their CPU cost per call; each server's CPU per call
// is also read from /proc. Each round starts fresh processes.
//
// BENCH_BASELINE=<git revision> sets serve() against the serve() of that revision instead of
// bare (its packages/server/src, extracted with git archive): a change's before and after in
// one run, e.g. BENCH_BASELINE=HEAD~1.
//
// BENCH_PROFILE=1 instead loads serve() alone under `--cpu-prof` and prints where its time
// goes (BENCH_PROTOCOLS picks the protocol; BENCH_PROFILE_SIDE=bare profiles bare instead).
import { execFileSync } from "node:child_process";
import { mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { create, toBinary } from "@bufbuild/protobuf";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { ComputeRequestSchema, WorkerService } from "@quartet/proto/quartet/worker/v1/worker_pb";
import { type ServiceProcess, startServiceProcess } from "@quartet/server/testing";
import { selfTimeByPackage, topSelfTime } from "../kv/profile.ts";
import { type Figure, median, report } from "../lib/report.ts";
import { cpuMs, ensureCommands, h2load, listFromEnv, pairedCpus, pinToCpu } from "../lib/tools.ts";

ensureCommands({ h2load: "nghttp2-client", taskset: "util-linux" });

const seconds = Number(process.env.BENCH_SECONDS ?? 8);
const warmupSeconds = Number(process.env.BENCH_WARMUP_SECONDS ?? 8);
const rounds = Number(process.env.BENCH_ROUNDS ?? 5);
const { shared: serverCpu, other: loadCpu } = pairedCpus();
const server = fileURLToPath(new URL("./server.ts", import.meta.url));
const procedure = "/quartet.worker.v1.WorkerService/Compute";

const dir = tmpdir();
const message = toBinary(ComputeRequestSchema, create(ComputeRequestSchema, { input: "x" }));
const connectBody = join(dir, "quartet-server-overhead-connect.bin");
const grpcBody = join(dir, "quartet-server-overhead-grpc.bin");
writeFileSync(connectBody, message);
// gRPC: one envelope, flags 0 and a 4-byte big-endian length before the message.
const envelope = new Uint8Array(5 + message.length);
new DataView(envelope.buffer).setUint32(1, message.length);
envelope.set(message, 5);
writeFileSync(grpcBody, envelope);

const jsonBody = join(dir, "quartet-server-overhead.json");
writeFileSync(jsonBody, JSON.stringify({ input: "x" }));

const protocols = {
  "grpc-proto-h2c": {
    body: grpcBody,
    // What grpc-js and grpc-go send: a client that accepts compressed answers.
    headers: {
      "content-type": "application/grpc",
      te: "trailers",
      "grpc-accept-encoding": "identity,deflate,gzip",
    },
    transport: () => createGrpcTransport,
    h1: false,
    clients: 4,
    streams: 16,
  },
  "connect-proto-h2c": {
    body: connectBody,
    headers: { "content-type": "application/proto", "connect-protocol-version": "1" },
    transport: () => createConnectTransport,
    h1: false,
    clients: 4,
    streams: 16,
  },
  "connect-json-h1": {
    body: jsonBody,
    headers: { "content-type": "application/json", "connect-protocol-version": "1" },
    transport: () => createConnectTransport,
    h1: true,
    clients: 64,
    streams: 1,
  },
} as const;
type Protocol = (typeof protocols)[keyof typeof protocols];

const onlyProtocols = listFromEnv("BENCH_PROTOCOLS", Object.keys(protocols));

/** packages/server/src as it is at `revision`, in a temporary directory. */
const extractServerSrc = (revision: string) => {
  const repo = fileURLToPath(new URL("../..", import.meta.url));
  const root = mkdtempSync(join(tmpdir(), "quartet-server-baseline-"));
  const tar = execFileSync("git", ["archive", revision, "packages/server/src"], {
    cwd: repo,
    maxBuffer: 64 << 20,
  });
  execFileSync("tar", ["-x", "-C", root], { input: tar });
  // Its imports (@connectrpc/*, @quartet/telemetry, ...) resolve to this checkout's packages.
  symlinkSync(join(repo, "node_modules"), join(root, "node_modules"));
  return { root, src: join(root, "packages/server/src") };
};
const baselineRevision = process.env.BENCH_BASELINE;
const baseline = baselineRevision === undefined ? undefined : extractServerSrc(baselineRevision);
/** What serve() is set against: bare connect-node, or serve() at the baseline revision. */
const other = baselineRevision === undefined ? "bare" : `serve@${baselineRevision}`;

// BENCH_TRACING=on: serve() (not bare) records a span per call, exported nowhere.
const tracing = process.env.BENCH_TRACING === "on";
const start = (side: "bare" | "serve" | "baseline", protocol: Protocol, nodeArgs: string[] = []) =>
  startServiceProcess(
    server,
    [
      ...(side === "bare" && protocol.h1 ? ["--http1"] : []),
      ...(side === "baseline"
        ? ["--side", "serve", "--server-src", baseline!.src]
        : ["--side", side]),
      ...(tracing ? ["--tracing"] : []),
    ],
    { nodeArgs },
  );

/** One real call through a Connect client, so h2load's 200s are known to be answers. */
const check = async (p: ServiceProcess, protocol: Protocol) => {
  const client = createClient(
    WorkerService,
    protocol.transport()({ baseUrl: p.url, httpVersion: protocol.h1 ? "1.1" : "2" }),
  );
  const res = await client.compute({ input: "x" });
  if (res.digest !== "d") throw new Error(`${p.url}: unexpected answer ${JSON.stringify(res)}`);
};

const load = async (p: ServiceProcess, protocol: Protocol, secs: number) => {
  const before = cpuMs(p.pid);
  const result = await h2load({
    url: p.url + procedure,
    seconds: secs,
    clients: protocol.clients,
    streams: protocol.streams,
    h1: protocol.h1,
    bodyFile: protocol.body,
    headers: protocol.headers,
    cpu: loadCpu,
  });
  // h2load counts the requests still in flight when the duration ends as failed.
  if (result.failed > protocol.clients * protocol.streams)
    throw new Error(`${p.url}: ${result.failed} failed`);
  // h2load's 1 s warm-up requests cost CPU too: count them at the measured rate.
  const served = result.succeeded * (1 + 1 / secs);
  return { reqPerSec: result.reqPerSec, cpuUsPerCall: ((cpuMs(p.pid) - before) * 1000) / served };
};

async function profile(): Promise<void> {
  const side = process.env.BENCH_PROFILE_SIDE === "bare" ? "bare" : "serve";
  const profileDir = mkdtempSync(join(tmpdir(), "quartet-server-overhead-profile-"));
  const protocolName = onlyProtocols[0]!;
  const protocol = protocols[protocolName as keyof typeof protocols];
  const p = await start(side, protocol, ["--cpu-prof", "--cpu-prof-dir", profileDir]);
  try {
    await check(p, protocol);
    if (serverCpu !== undefined) pinToCpu(p.pid, serverCpu);
    await load(p, protocol, warmupSeconds);
    const m = await load(p, protocol, seconds);
    console.log(
      `${side} ${protocolName} alone under --cpu-prof: ${Math.round(m.reqPerSec)} req/s, ${m.cpuUsPerCall.toFixed(1)} us CPU/call`,
    );
  } finally {
    // SIGINT lets node write the profile; serve() drains, bare exits at once.
    await p.kill("SIGINT");
  }
  const file = readdirSync(profileDir).find((f) => f.endsWith(".cpuprofile"));
  if (!file) throw new Error(`no profile in ${profileDir}`);
  console.log(`profile: ${join(profileDir, file)}`);
  const rows = topSelfTime(join(profileDir, file), Number.POSITIVE_INFINITY, seconds * 1000);
  console.log("by package:");
  for (const [pkg, percent] of selfTimeByPackage(rows).slice(0, 15))
    console.log(`  ${percent.toFixed(1).padStart(5)}%  ${pkg}`);
  console.log("by function:");
  for (const f of rows.slice(0, 40))
    console.log(`  ${f.percent.toFixed(1).padStart(5)}%  ${f.name}  ${f.where}`);
}

if (process.env.BENCH_PROFILE) {
  await profile();
  process.exit(0);
}

interface Measured {
  reqPerSec: number;
  cpuUsPerCall: number;
}
const runs: Record<string, Measured[]> = {};
const ratioRuns: Record<string, number[]> = {};
const push = <T>(map: Record<string, T[]>, key: string, value: T) => {
  map[key] ??= [];
  map[key].push(value);
};
for (let round = 1; round <= rounds; round++) {
  for (const name of onlyProtocols) {
    const protocol = protocols[name as keyof typeof protocols];
    const pair = await Promise.all([
      start(baseline ? "baseline" : "bare", protocol),
      start("serve", protocol),
    ]);
    // Alternate which server h2load starts on first.
    const order = round % 2 === 0 ? pair : [pair[1], pair[0]];
    try {
      for (const p of pair) await check(p, protocol);
      if (serverCpu !== undefined) for (const p of pair) pinToCpu(p.pid, serverCpu);
      await Promise.all(order.map((p) => load(p, protocol, warmupSeconds)));
      const measured = await Promise.all(order.map((p) => load(p, protocol, seconds)));
      const [bare, serve] = round % 2 === 0 ? measured : [measured[1]!, measured[0]!];
      push(runs, `${other}/${name}`, bare!);
      push(runs, `serve/${name}`, serve!);
      push(ratioRuns, `serve_vs_${other}/${name}`, serve!.reqPerSec / bare!.reqPerSec);
      push(ratioRuns, `serve_vs_${other}_cpu/${name}`, bare!.cpuUsPerCall / serve!.cpuUsPerCall);
      console.log(
        `round ${round} ${name}: ${other} ${Math.round(bare!.reqPerSec)} req/s (${bare!.cpuUsPerCall.toFixed(1)} us CPU/call), ` +
          `serve ${Math.round(serve!.reqPerSec)} req/s (${serve!.cpuUsPerCall.toFixed(1)} us CPU/call): ` +
          `${(serve!.reqPerSec / bare!.reqPerSec).toFixed(3)}x`,
      );
    } finally {
      await Promise.all(pair.map((p) => p.kill("SIGKILL")));
    }
  }
}
if (baseline) rmSync(baseline.root, { recursive: true, force: true });

const figures: Record<string, Figure> = {};
for (const [key, measured] of Object.entries(runs)) {
  figures[key] = { value: median(measured.map((m) => m.reqPerSec)), unit: "req/s" };
  figures[`${key}/cpu`] = {
    value: median(measured.map((m) => m.cpuUsPerCall)),
    unit: "us CPU/call",
  };
}
const ratios: Record<string, number> = {};
for (const [key, values] of Object.entries(ratioRuns)) ratios[key] = median(values);
report("server-overhead", figures, ratios, [
  `serve() and ${baseline ? `serve() at ${baselineRevision}` : "a bare connectNodeAdapter + http2 server"} loaded at the same time, both pinned to CPU ${serverCpu ?? "(none)"}, h2load on CPU ${loadCpu ?? "(none)"}; ${rounds} rounds of fresh processes, ${warmupSeconds} s warm-up, ${seconds} s measured`,
  `h2c: 4 connections x 16 streams; HTTP/1.1: 64 connections; a trivial unary method (no work in the handler); ${tracing ? "serve() records every span (OTEL_TRACES_EXPORTER=none)" : "telemetry off"}`,
  `ratios: medians over rounds of serve() over ${other} (req/s), and of ${other}'s CPU per call over serve()'s (_cpu)`,
]);
