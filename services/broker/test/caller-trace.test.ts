import type { ServiceProcess } from "@quartet/server/testing";
import {
  type OtlpReceiver,
  type ReceivedSpan,
  startOtlpReceiver,
} from "@quartet/telemetry/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { client, dataDir, startBroker, startConsumerWorker } from "./brokers.ts";

/** A binary ComputeRequest { input: "hello" }, base64 as Connect JSON carries bytes. */
const HELLO_JOB = "EgVoZWxsbw==";

let receiver: OtlpReceiver;
let broker: ServiceProcess;
let worker: ServiceProcess;

beforeAll(async () => {
  receiver = await startOtlpReceiver();
  const env = { OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url, OTEL_BSP_SCHEDULE_DELAY: "50" };
  broker = await startBroker(["--data-dir", dataDir()], { env });
  await client(broker.url).admin.createQueue({ queue: "curl-jobs", settings: { durable: true } });
  worker = await startConsumerWorker(
    "trace-worker",
    broker.url,
    ["--queue", "curl-jobs", "--request-subject", "curl.compute"],
    { env },
  );
  await Promise.all([
    worker.waitForLog((l) => l.msg === "consumer attached"),
    worker.waitForLog((l) => l.msg === "responder subscribed"),
  ]);
}, 60_000);

afterAll(async () => {
  await worker?.kill("SIGTERM");
  await broker?.kill("SIGTERM");
  await receiver?.close();
});

/** Whether `spans` hold one named `name` (of `kind`, if given) in trace `traceId`. */
function has(spans: ReceivedSpan[], traceId: string, name: string, kind?: ReceivedSpan["kind"]) {
  return spans.some(
    (s) => s.traceId === traceId && s.name === name && (kind === undefined || s.kind === kind),
  );
}

/** A Connect JSON unary call as curl or a browser makes it: no trace context but `traceparent`. */
async function callWithTraceparent(method: string, body: unknown): Promise<Response> {
  const res = await fetch(`${broker.url}/quartet.broker.v1.BrokerService/${method}`, {
    method: "POST",
    headers: { "content-type": "application/json", traceparent: traceparent() },
    body: JSON.stringify(body),
  });
  expect(res.status, await res.clone().text()).toBe(200);
  return res;
}

let seed = 0x5eed;
/** A fresh W3C traceparent from a seeded generator; its trace id is `lastTraceId`. */
let lastTraceId = "";
function traceparent(): string {
  const hex = (n: number) =>
    Array.from({ length: n }, () => {
      seed = (seed * 1103515245 + 12345) >>> 0;
      return (seed >>> 16).toString(16).padStart(4, "0").slice(-1);
    }).join("");
  lastTraceId = hex(32);
  return `00-${lastTraceId}-${hex(16)}-01`;
}

describe("a caller that sends only a traceparent header", () => {
  it("Enqueue: the worker's processing span and its Ack continue the caller's trace", async () => {
    await callWithTraceparent("Enqueue", {
      queue: "curl-jobs",
      messages: [{ payload: HELLO_JOB }],
    });
    const traceId = lastTraceId;
    const spans = await receiver.waitForSpans(
      (all) =>
        has(all, traceId, "process curl-jobs") &&
        has(all, traceId, "quartet.broker.v1.BrokerService/Ack", "client") &&
        // Each process exports on its own schedule: the broker's span may come last.
        has(all, traceId, "quartet.broker.v1.BrokerService/Enqueue", "server"),
    );
    const inTrace = spans.filter((s) => s.traceId === traceId);
    const enqueue = inTrace.find(
      (s) => s.name === "quartet.broker.v1.BrokerService/Enqueue" && s.kind === "server",
    )!;
    const processing = inTrace.find((s) => s.name === "process curl-jobs")!;
    expect(processing).toMatchObject({
      kind: "consumer",
      serviceName: "quartet-worker",
      // The broker put the Enqueue call's server span into the message.
      parentSpanId: enqueue.spanId,
    });
    const ack = inTrace.find(
      (s) => s.name === "quartet.broker.v1.BrokerService/Ack" && s.kind === "client",
    )!;
    expect(ack).toMatchObject({ serviceName: "quartet-worker", parentSpanId: processing.spanId });
  }, 30_000);

  it("Publish: the responder's processing span continues the caller's trace", async () => {
    await callWithTraceparent("Publish", {
      subject: "curl.compute",
      payload: HELLO_JOB,
      replyTo: "curl.replies",
    });
    const traceId = lastTraceId;
    const spans = await receiver.waitForSpans(
      (all) =>
        has(all, traceId, "process curl.compute") &&
        has(all, traceId, "quartet.broker.v1.BrokerService/Publish", "server"),
    );
    const publish = spans.find(
      (s) =>
        s.traceId === traceId &&
        s.name === "quartet.broker.v1.BrokerService/Publish" &&
        s.kind === "server",
    )!;
    expect(
      spans.find((s) => s.traceId === traceId && s.name === "process curl.compute"),
    ).toMatchObject({
      kind: "consumer",
      serviceName: "quartet-worker",
      parentSpanId: publish.spanId,
    });
  }, 30_000);

  it("Request: the responder answers inside the caller's trace", async () => {
    const res = await callWithTraceparent("Request", {
      subject: "curl.compute",
      payload: HELLO_JOB,
      timeoutMs: 20_000,
    });
    const { reply } = (await res.json()) as { reply: { headers?: Record<string, string> } };
    expect(reply.headers?.["quartet-error-code"]).toBeUndefined();
    const traceId = lastTraceId;
    // The broker's Request span ends after the reply it waited for, so wait for both.
    const spans = await receiver.waitForSpans(
      (all) =>
        has(all, traceId, "process curl.compute") &&
        has(all, traceId, "quartet.broker.v1.BrokerService/Request", "server"),
    );
    const request = spans.find(
      (s) =>
        s.traceId === traceId &&
        s.name === "quartet.broker.v1.BrokerService/Request" &&
        s.kind === "server",
    )!;
    expect(
      spans.find((s) => s.traceId === traceId && s.name === "process curl.compute"),
    ).toMatchObject({
      parentSpanId: request.spanId,
    });
  }, 30_000);

  it("a message that carries its own trace context keeps it", async () => {
    const own = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    await callWithTraceparent("Enqueue", {
      queue: "curl-jobs",
      messages: [{ payload: HELLO_JOB, headers: { traceparent: own } }],
    });
    const spans = await receiver.waitForSpans((all) =>
      all.some(
        (s) => s.traceId === "0af7651916cd43dd8448eb211c80319c" && s.name === "process curl-jobs",
      ),
    );
    expect(
      spans.find(
        (s) => s.traceId === "0af7651916cd43dd8448eb211c80319c" && s.name === "process curl-jobs",
      ),
    ).toMatchObject({ parentSpanId: "b7ad6b7169203331" });
  }, 30_000);
});
