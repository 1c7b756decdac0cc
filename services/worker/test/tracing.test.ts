import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { context, propagation, trace } from "@opentelemetry/api";
import { WorkerService } from "@quartet/proto/quartet/worker/v1/worker_pb";
import type { ServiceProcess } from "@quartet/server/testing";
import { createTelemetryTransport, startTelemetry, type Telemetry } from "@quartet/telemetry";
import {
  type OtlpReceiver,
  type ReceivedSpan,
  startOtlpReceiver,
} from "@quartet/telemetry/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startWorker } from "./workers.ts";

let receiver: OtlpReceiver;
let telemetry: Telemetry;
let workers: ServiceProcess[];

beforeAll(async () => {
  receiver = await startOtlpReceiver();
  const env = {
    OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
    OTEL_BSP_SCHEDULE_DELAY: "50",
    QUARTET_BAGGAGE_SPAN_ATTRIBUTES: "tenant",
  };
  Object.assign(process.env, env);
  telemetry = startTelemetry({ serviceName: "test-client" });
  workers = await Promise.all(["w-a", "w-b", "w-c"].map((id) => startWorker(id, [], { env })));
  // Three processes with telemetry start in 10 s on an idle machine, not on a loaded one.
}, 60_000);

afterAll(async () => {
  await Promise.all(workers.map((w) => w.kill("SIGTERM")));
  await telemetry?.shutdown();
  await receiver?.close();
});

const client = () =>
  createClient(
    WorkerService,
    createTelemetryTransport({ baseUrl: workers[0]!.url, httpVersion: "1.1" }),
  );

const inTrace = (traceId: string) => (spans: ReceivedSpan[]) =>
  spans.filter((s) => s.traceId === traceId);

describe("trace and deadline propagation across worker processes", () => {
  it("a Fanout through 3 workers is one trace: client -> Fanout -> Compute x3", async () => {
    const tracer = trace.getTracer("test");
    const traceId = await tracer.startActiveSpan("test-root", async (root) => {
      await client().fanout({ peers: workers.map((w) => w.url), request: { iterations: 10 } });
      root.end();
      return root.spanContext().traceId;
    });
    await telemetry.forceFlush();
    const spans = inTrace(traceId)(
      await receiver.waitForSpans(
        (all) => inTrace(traceId)(all).filter((s) => s.name.endsWith("/Compute")).length >= 6,
      ),
    );
    const byId = new Map(spans.map((s) => [s.spanId, s]));
    const parentOf = (s: ReceivedSpan) => byId.get(s.parentSpanId);

    const fanoutClient = spans.find(
      (s) => s.name === "quartet.worker.v1.WorkerService/Fanout" && s.kind === "client",
    )!;
    const fanoutServer = spans.find(
      (s) => s.name === "quartet.worker.v1.WorkerService/Fanout" && s.kind === "server",
    )!;
    expect(fanoutClient.serviceName).toBe("test-client");
    expect(fanoutServer.serviceName).toBe("quartet-worker");
    expect(parentOf(fanoutServer)).toBe(fanoutClient);
    expect(fanoutServer.attributes).toMatchObject({
      "rpc.service": "quartet.worker.v1.WorkerService",
      "rpc.method": "Fanout",
    });

    const computeClients = spans.filter((s) => s.name.endsWith("/Compute") && s.kind === "client");
    const computeServers = spans.filter((s) => s.name.endsWith("/Compute") && s.kind === "server");
    expect(computeClients).toHaveLength(3);
    expect(computeServers).toHaveLength(3);
    for (const c of computeClients) expect(parentOf(c)).toBe(fanoutServer);
    for (const s of computeServers) {
      expect(computeClients).toContain(parentOf(s));
      expect(s.attributes).toMatchObject({ "rpc.method": "Compute" });
    }
  });

  it("a Fanout with a 200 ms deadline over 2 s Computes fails with DeadlineExceeded and aborts every Compute", async () => {
    const peers = workers.map((w) => w.url);
    const aborted = workers.map((w) => w.waitForLog((line) => line.msg === "compute aborted"));
    const err = ConnectError.from(
      await client()
        .fanout({ peers, request: { fault: { delayMs: 2000 } } }, { timeoutMs: 200 })
        .catch((e) => e),
    );
    expect(err.code).toBe(Code.DeadlineExceeded);
    const lines = await Promise.all(aborted);
    expect(lines).toHaveLength(3);
  });

  it("the trace id and baggage of a call reach the downstream handler", async () => {
    const tracer = trace.getTracer("test");
    const bag = propagation.createBaggage({ tenant: { value: "acme" } });
    const traceId = await context.with(propagation.setBaggage(context.active(), bag), () =>
      tracer.startActiveSpan("baggage-root", async (root) => {
        await client().fanout({ peers: [workers[1]!.url], request: {} });
        root.end();
        return root.spanContext().traceId;
      }),
    );
    await telemetry.forceFlush();
    const spans = await receiver.waitForSpans((all) =>
      inTrace(traceId)(all).some((s) => s.name.endsWith("/Compute") && s.kind === "server"),
    );
    const downstream = inTrace(traceId)(spans).find(
      (s) => s.name.endsWith("/Compute") && s.kind === "server",
    )!;
    expect(downstream.traceId).toBe(traceId);
    expect(downstream.attributes["tenant"]).toBe("acme");
  });
});
