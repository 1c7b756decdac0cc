import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { context, propagation, SpanKind, SpanStatusCode } from "@opentelemetry/api";
import type { ReadableSpan } from "@opentelemetry/sdk-trace-base";
import { ComputeRequestSchema, WorkerService } from "@quartet/proto/quartet/worker/v1/worker_pb";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import {
  createTelemetryTransport,
  currentCall,
  logMixin,
  startTelemetry,
  type Telemetry,
} from "../src/index.ts";
import { SpanCollector, startWorkerServer, type TestServer } from "./servers.ts";

const SERVICE = "quartet.worker.v1.WorkerService";
const collector = new SpanCollector();
let telemetry: Telemetry;

/** What the downstream Compute handler observed, per call. */
interface Seen {
  traceparent: string | null;
  tenant: string | undefined;
  procedure: string | undefined;
  logFields: Record<string, string>;
}
const seen: Seen[] = [];
let computeFailure: ConnectError | undefined;
let downstream: TestServer;
let upstream: TestServer;

beforeAll(async () => {
  telemetry = startTelemetry({ serviceName: "telemetry-test", spanProcessors: [collector] });
  downstream = await startWorkerServer({
    compute(req, ctx) {
      seen.push({
        traceparent: ctx.requestHeader.get("traceparent"),
        tenant: propagation.getBaggage(context.active())?.getEntry("tenant")?.value,
        procedure: currentCall()?.procedure,
        logFields: logMixin(),
      });
      if (computeFailure !== undefined) throw computeFailure;
      return { digest: `digest of ${req.input}`, workerId: "downstream" };
    },
    async *watch(req, ctx) {
      yield { step: 1, totalSteps: req.steps };
      // Never finishes by itself: only the caller's cancel ends this stream.
      await new Promise((resolve) => ctx.signal.addEventListener("abort", resolve));
    },
  });
  // The upstream Fanout handler has no telemetry code: it just calls its peers.
  const peers = new Map<string, ReturnType<typeof createClient<typeof WorkerService>>>();
  upstream = await startWorkerServer(
    {
      async fanout(req) {
        const results = [];
        for (const peer of req.peers) {
          let client = peers.get(peer);
          if (client === undefined) {
            client = createClient(
              WorkerService,
              createTelemetryTransport({ baseUrl: peer, httpVersion: "2" }),
            );
            peers.set(peer, client);
          }
          const response = await client.compute(req.request ?? {});
          results.push({ peer, outcome: { case: "response" as const, value: response } });
        }
        return { results };
      },
    },
    { httpVersion: "1.1" },
  );
});

afterAll(async () => {
  await upstream.close();
  await downstream.close();
  await telemetry.shutdown();
});

afterEach(() => {
  collector.clear();
  seen.length = 0;
  computeFailure = undefined;
});

function spanNamed(spans: ReadableSpan[], name: string, kind: SpanKind): ReadableSpan {
  const span = spans.find((s) => s.name === `${SERVICE}/${name}` && s.kind === kind);
  expect(span, `${SpanKind[kind]} span ${name}`).toBeDefined();
  return span!;
}

function parentId(span: ReadableSpan): string | undefined {
  return span.parentSpanContext?.spanId;
}

describe("trace propagation through Connect interceptors", () => {
  it("builds the tree client -> Fanout -> client -> Compute with RPC attributes", async () => {
    const client = createClient(
      WorkerService,
      createTelemetryTransport({ baseUrl: upstream.url, httpVersion: "1.1" }),
    );
    const response = await client.fanout({ peers: [downstream.url], request: { input: "x" } });
    expect(response.results[0]?.outcome.value).toMatchObject({ workerId: "downstream" });

    const spans = await collector.waitFor((s) => s.length >= 4);
    expect(spans).toHaveLength(4);
    const fanoutClient = spanNamed(spans, "Fanout", SpanKind.CLIENT);
    const fanoutServer = spanNamed(spans, "Fanout", SpanKind.SERVER);
    const computeClient = spanNamed(spans, "Compute", SpanKind.CLIENT);
    const computeServer = spanNamed(spans, "Compute", SpanKind.SERVER);

    const traceId = fanoutClient.spanContext().traceId;
    for (const span of spans) expect(span.spanContext().traceId).toBe(traceId);
    expect(parentId(fanoutClient)).toBeUndefined();
    expect(parentId(fanoutServer)).toBe(fanoutClient.spanContext().spanId);
    expect(parentId(computeClient)).toBe(fanoutServer.spanContext().spanId);
    expect(parentId(computeServer)).toBe(computeClient.spanContext().spanId);

    expect(fanoutServer.attributes).toEqual({
      "rpc.system": "connect_rpc",
      "rpc.service": SERVICE,
      "rpc.method": "Fanout",
    });
    expect(computeClient.attributes).toEqual({
      "rpc.system": "connect_rpc",
      "rpc.service": SERVICE,
      "rpc.method": "Compute",
      "server.address": "127.0.0.1",
      "server.port": downstream.port,
    });
    expect(fanoutClient.attributes["server.port"]).toBe(upstream.port);
    for (const span of spans) expect(span.status.code).toBe(SpanStatusCode.UNSET);
    expect(fanoutServer.resource.attributes["service.name"]).toBe("telemetry-test");

    // The handler needed no code: the downstream saw this trace and its own span.
    expect(seen[0]?.traceparent).toBe(`00-${traceId}-${computeClient.spanContext().spanId}-01`);
    expect(seen[0]?.procedure).toBe(`${SERVICE}/Compute`);
    expect(seen[0]?.logFields).toEqual({
      trace_id: traceId,
      span_id: computeServer.spanContext().spanId,
    });
  });

  it("carries an incoming trace id and baggage entry to the downstream handler", async () => {
    const traceId = "4bf92f3577b34da6a3ce929d0e0e4736";
    const callerSpanId = "00f067aa0ba902b7";
    // A caller without telemetry, as curl or a client in another language would be.
    const client = createClient(
      WorkerService,
      createConnectTransport({ baseUrl: upstream.url, httpVersion: "1.1" }),
    );
    await client.fanout(
      { peers: [downstream.url] },
      { headers: { traceparent: `00-${traceId}-${callerSpanId}-01`, baggage: "tenant=acme" } },
    );
    const spans = await collector.waitFor((s) => s.length >= 3);
    const fanoutServer = spanNamed(spans, "Fanout", SpanKind.SERVER);
    const computeClient = spanNamed(spans, "Compute", SpanKind.CLIENT);
    expect(fanoutServer.spanContext().traceId).toBe(traceId);
    expect(parentId(fanoutServer)).toBe(callerSpanId);
    expect(seen[0]?.traceparent).toBe(`00-${traceId}-${computeClient.spanContext().spanId}-01`);
    expect(seen[0]?.tenant).toBe("acme");
  });

  it("marks failed calls with the Connect code on client and server spans", async () => {
    computeFailure = new ConnectError("no such thing", Code.NotFound);
    const client = createClient(
      WorkerService,
      createTelemetryTransport({ baseUrl: downstream.url, httpVersion: "2" }),
    );
    await expect(client.compute({ input: "x" })).rejects.toMatchObject({ code: Code.NotFound });
    const spans = await collector.waitFor((s) => s.length >= 2);
    const clientSpan = spanNamed(spans, "Compute", SpanKind.CLIENT);
    const serverSpan = spanNamed(spans, "Compute", SpanKind.SERVER);
    expect(clientSpan.attributes["rpc.connect_rpc.error_code"]).toBe("not_found");
    expect(clientSpan.status).toEqual({ code: SpanStatusCode.ERROR, message: "no such thing" });
    // NotFound is the caller's problem: the server span records the code, not an error.
    expect(serverSpan.attributes["rpc.connect_rpc.error_code"]).toBe("not_found");
    expect(serverSpan.status.code).toBe(SpanStatusCode.UNSET);

    collector.clear();
    computeFailure = new ConnectError("boom", Code.Internal);
    await expect(client.compute({ input: "x" })).rejects.toMatchObject({ code: Code.Internal });
    const failed = await collector.waitFor((s) => s.length >= 2);
    expect(spanNamed(failed, "Compute", SpanKind.SERVER).status).toEqual({
      code: SpanStatusCode.ERROR,
      message: "boom",
    });
  });

  it("reports rpc.system grpc and the numeric status for the gRPC protocol", async () => {
    const client = createClient(
      WorkerService,
      createTelemetryTransport({ baseUrl: downstream.url, protocol: "grpc" }),
    );
    await client.compute(create(ComputeRequestSchema, { input: "x" }));
    const spans = await collector.waitFor((s) => s.length >= 2);
    for (const kind of [SpanKind.CLIENT, SpanKind.SERVER]) {
      const span = spanNamed(spans, "Compute", kind);
      expect(span.attributes["rpc.system"]).toBe("grpc");
      expect(span.attributes["rpc.grpc.status_code"]).toBe(0);
    }
  });

  it("ends both streaming spans when the client cancels the stream", async () => {
    const client = createClient(
      WorkerService,
      createTelemetryTransport({ baseUrl: downstream.url, httpVersion: "2" }),
    );
    const abort = new AbortController();
    const stream = client.watch({ steps: 10 }, { signal: abort.signal });
    const iterator = stream[Symbol.asyncIterator]();
    const first = await iterator.next();
    expect(first.value).toMatchObject({ step: 1 });
    abort.abort();
    await expect(iterator.next()).rejects.toMatchObject({ code: Code.Canceled });

    const spans = await collector.waitFor(
      (s) => s.filter((span) => span.name === `${SERVICE}/Watch`).length >= 2,
    );
    const clientSpan = spanNamed(spans, "Watch", SpanKind.CLIENT);
    const serverSpan = spanNamed(spans, "Watch", SpanKind.SERVER);
    expect(clientSpan.attributes["rpc.connect_rpc.error_code"]).toBe("canceled");
    expect(clientSpan.status.code).toBe(SpanStatusCode.ERROR);
    expect(serverSpan.attributes["rpc.connect_rpc.error_code"]).toBe("canceled");
    expect(parentId(serverSpan)).toBe(clientSpan.spanContext().spanId);
  });

  it("serves the RPC duration histograms in Prometheus text format", async () => {
    const client = createClient(
      WorkerService,
      createTelemetryTransport({ baseUrl: downstream.url, httpVersion: "2" }),
    );
    await client.compute({ input: "x" });
    const text = await scrapeMetrics(telemetry);
    const serverLine = text
      .split("\n")
      .find(
        (line) => line.startsWith("rpc_server_duration") && line.includes('rpc_method="Compute"'),
      );
    expect(serverLine).toBeDefined();
    expect(serverLine).toContain(`rpc_service="${SERVICE}"`);
    expect(serverLine).toContain('rpc_response_status_code="ok"');
    expect(text).toMatch(/rpc_client_duration\w*_count\{[^}]*rpc_method="Compute"/);
  });
});

describe("runtime metrics", () => {
  it("serves GC pauses by kind, in buckets that tell scavenges apart, and the event loop's delay", async () => {
    setFlagsFromString("--expose-gc");
    const gc = runInNewContext("gc") as (options: { type: "minor" }) => void;
    gc({ type: "minor" });
    // The GC observer hears of the pause asynchronously.
    let text = "";
    for (let i = 0; i < 50; i++) {
      text = await scrapeMetrics(telemetry);
      if (/^v8js_gc_duration_count\{v8js_gc_type="minor"[^}]*\} [1-9]/m.test(text)) break;
    }
    expect(text).toMatch(/^v8js_gc_duration_count\{v8js_gc_type="minor"[^}]*\} [1-9]/m);
    for (const le of ["0.0005", "0.001", "0.002", "0.005", "0.01"]) {
      expect(text).toMatch(
        new RegExp(`^v8js_gc_duration_bucket\\{v8js_gc_type="minor"[^}]*le="${le}"\\}`, "m"),
      );
    }
    expect(text).toMatch(/^nodejs_eventloop_delay_p99\{[^}]*\} \d/m);
    expect(text).toMatch(/^nodejs_eventloop_utilization\{[^}]*\} \d/m);
    expect(text).toMatch(/^v8js_memory_heap_used\{v8js_heap_space_name="old_space"[^}]*\} \d/m);
  });
});

/** Runs the metrics handler against a real HTTP server and returns the body. */
async function scrapeMetrics(t: Telemetry): Promise<string> {
  const { createServer } = await import("node:http");
  const server = createServer((req, res) => t.metricsHandler(req, res));
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address() as { port: number };
  try {
    const response = await fetch(`http://127.0.0.1:${address.port}/metrics`);
    expect(response.status).toBe(200);
    return await response.text();
  } finally {
    server.closeAllConnections();
    server.close();
  }
}
