import { trace } from "@opentelemetry/api";
import type { ServiceProcess } from "@quartet/server/testing";
import { startTelemetry, type Telemetry } from "@quartet/telemetry";
import { type OtlpReceiver, startOtlpReceiver } from "@quartet/telemetry/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { brokerClient, job, startBroker, startQueueWorker } from "./brokered.ts";

let receiver: OtlpReceiver;
let telemetry: Telemetry;
let broker: ServiceProcess;
let worker: ServiceProcess;

beforeAll(async () => {
  receiver = await startOtlpReceiver();
  const env = { OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url, OTEL_BSP_SCHEDULE_DELAY: "50" };
  Object.assign(process.env, env);
  telemetry = startTelemetry({ serviceName: "test-publisher" });
  broker = await startBroker({ env });
  await brokerClient(broker.url).admin.createQueue({
    queue: "traced",
    settings: { durable: true },
  });
  worker = await startQueueWorker(
    "traced-worker",
    broker.url,
    "traced",
    ["--request-subject", "traced.compute"],
    {
      env,
    },
  );
  await worker.waitForLog((l) => l.msg === "responder subscribed");
}, 30_000);

afterAll(async () => {
  await worker?.kill("SIGTERM");
  await broker?.kill("SIGTERM");
  await telemetry?.shutdown();
  await receiver?.close();
});

describe("trace context through the broker", () => {
  it("a trace started by a publisher continues into the worker's processing span", async () => {
    const c = brokerClient(broker.url);
    const traceId = await trace.getTracer("test").startActiveSpan("checkout", async (root) => {
      await c.enqueue("traced", [{ payload: job("traced-job") }]);
      root.end();
      return root.spanContext().traceId;
    });
    await telemetry.forceFlush();
    const spans = await receiver.waitForSpans(
      (all) =>
        all.some((s) => s.traceId === traceId && s.name === "process traced") &&
        all.some(
          (s) => s.traceId === traceId && s.name.endsWith("/Enqueue") && s.kind === "server",
        ),
    );
    const inTrace = spans.filter((s) => s.traceId === traceId);
    const producer = inTrace.find((s) => s.name === "publish traced")!;
    const consumer = inTrace.find((s) => s.name === "process traced")!;
    const root = inTrace.find((s) => s.name === "checkout")!;
    expect(producer).toMatchObject({
      kind: "producer",
      serviceName: "test-publisher",
      parentSpanId: root.spanId,
    });
    expect(producer.attributes).toMatchObject({
      "messaging.system": "quartet",
      "messaging.destination.name": "traced",
      "messaging.operation.type": "send",
    });
    expect(consumer).toMatchObject({
      kind: "consumer",
      serviceName: "quartet-worker",
      parentSpanId: producer.spanId,
    });
    expect(consumer.attributes).toMatchObject({
      "messaging.system": "quartet",
      "messaging.destination.name": "traced",
      "messaging.operation.type": "process",
      "messaging.message.delivery_attempt": 1,
    });
    expect(consumer.links).toEqual([expect.objectContaining({ traceId, spanId: producer.spanId })]);
    // The Enqueue RPC itself is in the same trace, under the producer span, on the broker.
    const rpc = inTrace.find(
      (s) => s.name === "quartet.broker.v1.BrokerService/Enqueue" && s.kind === "server",
    );
    expect(rpc?.serviceName).toBe("quartet-broker");
    expect(inTrace.find((s) => s.spanId === rpc?.parentSpanId)?.name).toBe(
      "quartet.broker.v1.BrokerService/Enqueue",
    );
  }, 30_000);

  it("a request made inside a trace is answered in a worker span of that trace", async () => {
    const c = brokerClient(broker.url);
    const { traceId, spanId } = await trace
      .getTracer("test")
      .startActiveSpan("ask", async (root) => {
        await c.request("traced.compute", job("question"), { timeoutMs: 10_000 });
        root.end();
        return root.spanContext();
      });
    await telemetry.forceFlush();
    const spans = await receiver.waitForSpans((all) =>
      all.some((s) => s.traceId === traceId && s.name === "process traced.compute"),
    );
    const responder = spans.find(
      (s) => s.traceId === traceId && s.name === "process traced.compute",
    )!;
    expect(responder).toMatchObject({
      kind: "consumer",
      serviceName: "quartet-worker",
      parentSpanId: spanId,
    });
    expect(responder.links).toEqual([expect.objectContaining({ traceId, spanId })]);
    c.close();
  }, 30_000);
});
