import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { WorkerService } from "@quartet/proto/quartet/worker/v1/worker_pb";
import { afterAll, beforeAll, expect, it } from "vitest";
import {
  createTelemetryTransport,
  currentCall,
  startTelemetry,
  type Telemetry,
} from "../src/index.ts";
import { SpanCollector, startWorkerServer, type TestServer } from "./servers.ts";

// With a sampler that drops everything the interceptors start no spans at all, yet the
// caller's trace context, the deadline and cancellation must still reach downstream.
const collector = new SpanCollector();
let telemetry: Telemetry;
let downstream: TestServer;
let upstream: TestServer;
const seen: { traceparent: string | null; deadline: number | undefined }[] = [];

beforeAll(async () => {
  process.env.OTEL_TRACES_SAMPLER = "always_off";
  telemetry = startTelemetry({ serviceName: "sampling-off-test", spanProcessors: [collector] });
  downstream = await startWorkerServer({
    compute(_req, ctx) {
      seen.push({
        traceparent: ctx.requestHeader.get("traceparent"),
        deadline: currentCall()?.deadline,
      });
      return { workerId: "downstream" };
    },
  });
  const peer = createClient(
    WorkerService,
    createTelemetryTransport({ baseUrl: downstream.url, httpVersion: "2" }),
  );
  upstream = await startWorkerServer(
    {
      async fanout(req) {
        const response = await peer.compute(req.request ?? {});
        return {
          results: [{ peer: downstream.url, outcome: { case: "response", value: response } }],
        };
      },
    },
    { httpVersion: "1.1" },
  );
});

afterAll(async () => {
  delete process.env.OTEL_TRACES_SAMPLER;
  await upstream.close();
  await downstream.close();
  await telemetry.shutdown();
});

it("passes the caller's trace context and deadline on without recording spans", async () => {
  const traceId = "4bf92f3577b34da6a3ce929d0e0e4736";
  const client = createClient(
    WorkerService,
    createConnectTransport({ baseUrl: upstream.url, httpVersion: "1.1" }),
  );
  await client.fanout(
    { peers: [downstream.url], request: {} },
    { headers: { traceparent: `00-${traceId}-00f067aa0ba902b7-00` }, timeoutMs: 30_000 },
  );
  expect(seen).toHaveLength(1);
  expect(seen[0]!.traceparent).toMatch(new RegExp(`^00-${traceId}-[0-9a-f]{16}-00$`));
  expect(seen[0]!.deadline).toBeDefined();
  await telemetry.forceFlush();
  expect(collector.spans).toHaveLength(0);
});
