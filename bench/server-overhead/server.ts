// One side of bench/server-overhead: a trivial unary method (WorkerService.Compute answering
// a constant, no hashing) served over h2c by
//   --side bare:  connectNodeAdapter on a plain http2 server (--http1: http server), no
//                 options, no interceptors;
//   --side serve: @quartet/server's serve(), with every default limit and its interceptors;
//   --tracing:    serve() records a span per call (exported nowhere);
//   --side serve --server-src <dir>: the serve() of another copy of packages/server/src
//                 (the bench's BENCH_BASELINE extracts one from a git revision).
// Telemetry is off in both (no OpenTelemetry SDK started): this measures the runtime's
// per-call cost, not the tracing SDK's (bench/rpc measures tracing).
import http from "node:http";
import http2 from "node:http2";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { create } from "@bufbuild/protobuf";
import type { ConnectRouter } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { ComputeResponseSchema, WorkerService } from "@quartet/proto/quartet/worker/v1/worker_pb";
import * as current from "@quartet/server";
import { startTelemetry } from "@quartet/telemetry";

// SIGINT exits normally, so that `--cpu-prof` writes its profile.
process.once("SIGINT", () => process.exit(0));

const { values } = parseArgs({
  options: {
    side: { type: "string", default: "bare" },
    "server-src": { type: "string" },
    tracing: { type: "boolean", default: false },
    http1: { type: "boolean", default: false },
  },
});

const answer = create(ComputeResponseSchema, { digest: "d", iterations: 0, workerId: "w" });
const routes = (router: ConnectRouter) => router.service(WorkerService, { compute: () => answer });

if (values.side === "serve") {
  if (values.tracing) {
    process.env.OTEL_TRACES_SAMPLER = "always_on";
    process.env.OTEL_TRACES_EXPORTER = "none";
    startTelemetry({ serviceName: "bench-serve" });
  }
  const { serve } = (
    values["server-src"] === undefined
      ? current
      : await import(join(values["server-src"], "index.ts"))
  ) as typeof current;
  // serve() logs the "listening" line the bench waits for.
  await serve({ name: "bench-serve", routes });
} else if (values.side === "bare") {
  const handler = connectNodeAdapter({ routes });
  const server = values.http1 ? http.createServer(handler) : http2.createServer(handler);
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const { port } = server.address() as { port: number };
  console.log(JSON.stringify({ msg: "listening", url: `http://127.0.0.1:${port}` }));
} else {
  console.error(`--side must be bare or serve, not ${values.side}`);
  process.exit(2);
}
