import { type Tracer, trace } from "@opentelemetry/api";

let tracer: Tracer | undefined;

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
}
