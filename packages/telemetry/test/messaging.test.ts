import { context, propagation, ROOT_CONTEXT, SpanKind, trace } from "@opentelemetry/api";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  extractMessageContext,
  injectMessageHeaders,
  logMixin,
  startTelemetry,
  type Telemetry,
} from "../src/index.ts";
import { SpanCollector } from "./servers.ts";

const collector = new SpanCollector();
let telemetry: Telemetry;

beforeAll(() => {
  telemetry = startTelemetry({ serviceName: "messaging-test", spanProcessors: [collector] });
});

afterAll(async () => {
  await telemetry.shutdown();
});

describe("trace context in message headers", () => {
  it("continues the producer's trace in the consumer, with its baggage", () => {
    const tracer = trace.getTracer("test");
    const baggage = propagation.createBaggage({ tenant: { value: "acme" } });
    const headers = tracer.startActiveSpan(
      "orders publish",
      { kind: SpanKind.PRODUCER },
      propagation.setBaggage(ROOT_CONTEXT, baggage),
      (producer) => {
        const injected = injectMessageHeaders({ "message-id": "m1" });
        producer.end();
        return injected;
      },
    );
    expect(headers["message-id"]).toBe("m1");
    expect(headers.traceparent).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
    expect(headers.baggage).toBe("tenant=acme");

    // The consumer runs later, elsewhere: no active context to inherit from.
    const received = extractMessageContext(headers, ROOT_CONTEXT);
    const consumer = tracer.startSpan("orders process", { kind: SpanKind.CONSUMER }, received);
    consumer.end();

    const [producerSpan, consumerSpan] = collector.spans;
    expect(consumerSpan?.spanContext().traceId).toBe(producerSpan?.spanContext().traceId);
    expect(consumerSpan?.parentSpanContext?.spanId).toBe(producerSpan?.spanContext().spanId);
    expect(propagation.getBaggage(received)?.getEntry("tenant")?.value).toBe("acme");
  });

  it("reads header names case-insensitively", () => {
    const traceId = "0af7651916cd43dd8448eb211c80319c";
    const ctx = extractMessageContext(
      { Traceparent: `00-${traceId}-b7ad6b7169203331-01`, BAGGAGE: "k=v" },
      ROOT_CONTEXT,
    );
    expect(trace.getSpanContext(ctx)?.traceId).toBe(traceId);
    expect(propagation.getBaggage(ctx)?.getEntry("k")?.value).toBe("v");
  });

  it("writes nothing when there is no trace context or baggage", () => {
    expect(injectMessageHeaders({}, ROOT_CONTEXT)).toEqual({});
  });
});

describe("logMixin", () => {
  it("gives the active span's ids, and nothing outside a span", () => {
    expect(logMixin()).toEqual({});
    const span = trace.getTracer("test").startSpan("work");
    const fields = context.with(trace.setSpan(context.active(), span), () => logMixin());
    span.end();
    expect(fields).toEqual({
      trace_id: span.spanContext().traceId,
      span_id: span.spanContext().spanId,
    });
  });
});
