// The script of the browser test's page, bundled by esbuild at test time: a browser app that
// calls a worker through the gateway with @connectrpc/connect-web, as any web client would.
import { createClient, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-web";
import { WorkerService } from "@quartet/proto/quartet/worker/v1/worker_pb";

export interface PageResult {
  digest: string;
  workerId: string;
  steps: number[];
  lastDigest: string;
}

/**
 * Calls Compute (unary) and Watch (server streaming) through the gateway at `gatewayUrl`. The
 * page starts the trace: each call carries a W3C traceparent with the test's trace id and a
 * span id of its own, as a browser tracer would set them.
 */
async function run(gatewayUrl: string, traceId: string, spanIds: string[]): Promise<PageResult> {
  const spans = [...spanIds];
  const traceparent: Interceptor = (next) => (req) => {
    req.header.set("traceparent", `00-${traceId}-${spans.shift()}-01`);
    return next(req);
  };
  const client = createClient(
    WorkerService,
    createConnectTransport({ baseUrl: gatewayUrl, interceptors: [traceparent] }),
  );
  const answer = await client.compute({ input: "from the browser", iterations: 1 });
  const steps: number[] = [];
  let lastDigest = "";
  for await (const progress of client.watch({ steps: 3, iterationsPerStep: 1 })) {
    steps.push(progress.step);
    lastDigest = progress.digest;
  }
  return { digest: answer.digest, workerId: answer.workerId, steps, lastDigest };
}

(globalThis as { quartetRun?: typeof run }).quartetRun = run;
