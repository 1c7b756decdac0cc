import { create } from "@bufbuild/protobuf";
import { createClient } from "@connectrpc/connect";
import { context, propagation, SpanKind, trace } from "@opentelemetry/api";
import { AsyncLocalStorageContextManager } from "@opentelemetry/context-async-hooks";
import { W3CTraceContextPropagator } from "@opentelemetry/core";
import {
  BasicTracerProvider,
  InMemorySpanExporter,
  SimpleSpanProcessor,
} from "@opentelemetry/sdk-trace-base";
import { ComputeRequestSchema, WorkerService } from "@quartet/proto/quartet/worker/v1/worker_pb";
import { createClientInterceptors, withCallContext } from "@quartet/telemetry";
import { afterAll, beforeAll, expect, it } from "vitest";
import { staticResolver } from "../src/resolver.ts";
import { createBalancedTransport } from "../src/transport.ts";
import { startTestServer, type TestServer } from "./servers.ts";

const exporter = new InMemorySpanExporter();
let servers: TestServer[];

beforeAll(async () => {
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  trace.setGlobalTracerProvider(
    new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] }),
  );
  propagation.setGlobalPropagator(new W3CTraceContextPropagator());
  servers = await Promise.all([startTestServer("w1"), startTestServer("w2")]);
});

afterAll(async () => {
  await Promise.all(servers.map((s) => s.close()));
  trace.disable();
  propagation.disable();
  context.disable();
});

it("carries trace context to whichever endpoint it picks, wrapped by withCallContext", async () => {
  const balanced = createBalancedTransport({
    resolver: staticResolver(servers.map((s) => ({ id: s.id, address: s.url }))),
    interceptors: createClientInterceptors(),
    healthCheck: false,
  });
  const client = createClient(WorkerService, withCallContext(balanced));
  const parent = trace.getTracer("test").startSpan("parent");
  await context.with(trace.setSpan(context.active(), parent), async () => {
    for (let i = 0; i < 2; i++)
      await client.compute(create(ComputeRequestSchema, { iterations: 1 }));
  });
  parent.end();
  const traceId = parent.spanContext().traceId;
  for (const server of servers) {
    // traceparent: version-traceid-spanid-flags, with the parent's trace id.
    expect(server.lastHeaders!.get("traceparent")).toMatch(
      new RegExp(`^00-${traceId}-[0-9a-f]{16}-01$`),
    );
  }
  const clientSpans = exporter.getFinishedSpans().filter((s) => s.kind === SpanKind.CLIENT);
  expect(clientSpans.map((s) => s.name)).toEqual([
    "quartet.worker.v1.WorkerService/Compute",
    "quartet.worker.v1.WorkerService/Compute",
  ]);
  expect(clientSpans.every((s) => s.spanContext().traceId === traceId)).toBe(true);
  await balanced.close();
});
