import { INVALID_SPAN_CONTEXT, type Span, type Tracer, trace } from "@opentelemetry/api";

let tracer: Tracer | undefined;
let spansEnabled = true;

/**
 * Whether the interceptors create spans. Off when the SDK is disabled or its sampler drops
 * everything: incoming trace context is still passed on unchanged (so trace ids reach logs
 * and downstream services), but no span is started, which keeps a traced-off call cheap.
 */
export function spansOn(): boolean {
  return spansEnabled;
}

export function setSpansOn(on: boolean): void {
  spansEnabled = on;
}

/** Stands in for a span when spans are off: ends as a no-op, records nothing. */
export const noSpan: Span = trace.wrapSpanContext(INVALID_SPAN_CONTEXT);

/** Tracer of the global provider, cached until {@link resetInstruments}. */
export function getTracer(): Tracer {
  tracer ??= trace.getTracer("@quartet/telemetry");
  return tracer;
}

/**
 * Forgets the cached tracer, so that a tracer provider registered by a later
 * `startTelemetry()` (after a shutdown) is picked up.
 */
export function resetInstruments(): void {
  tracer = undefined;
  spansEnabled = true;
}
