// The baseline: a bare connect-node server answering WorkerService.Compute with the same
// application work as the worker, with no interceptors, no CORS and no limits.
//
// With --chain it also runs the interceptor chain every Quartet server runs (serve()'s own
// serverInterceptors, tracing configured by the OTEL_* environment) and nothing else of the
// Quartet stack: set against the plain baseline, it isolates what the chain costs.
import http from "node:http";
import http2 from "node:http2";
import { parseArgs } from "node:util";
import type { Interceptor } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { WorkerService } from "@quartet/proto/quartet/worker/v1/worker_pb";
import { defaultLimits, serverInterceptors } from "@quartet/server";
import { startTelemetry } from "@quartet/telemetry";
import { hashRounds } from "../../services/worker/src/compute.ts";

const { values } = parseArgs({ options: { chain: { type: "boolean", default: false } } });
let interceptors: Interceptor[] = [];
if (values.chain) {
  startTelemetry({ serviceName: "bench-bare-with-chain" });
  interceptors = serverInterceptors(defaultLimits);
}

const handler = connectNodeAdapter({
  routes: (router) =>
    router.service(WorkerService, {
      compute: async (req, ctx) => ({
        digest: await hashRounds(req.input, req.iterations, ctx.signal),
        iterations: req.iterations,
        workerId: "bare",
      }),
    }),
  interceptors,
});
const h1 = http.createServer(handler).listen(0, "127.0.0.1");
const h2 = http2.createServer(handler).listen(0, "127.0.0.1");
await Promise.all([h1, h2].map((s) => new Promise((r) => s.once("listening", r))));
const port = (s: http.Server | http2.Http2Server) => (s.address() as { port: number }).port;
console.log(
  JSON.stringify({
    msg: "listening",
    url: `http://127.0.0.1:${port(h1)}`,
    h2url: `http://127.0.0.1:${port(h2)}`,
  }),
);
