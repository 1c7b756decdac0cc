import { context, isSpanContextValid, trace } from "@opentelemetry/api";

const NONE: Record<string, string> = Object.freeze({}) as Record<string, string>;

/**
 * pino `mixin`: `{ trace_id, span_id }` of the active span, so every log line written
 * inside a call can be joined to its trace. Empty outside a span.
 */
export function logMixin(): Record<string, string> {
  const span = trace.getSpan(context.active());
  if (span === undefined) return NONE;
  const spanContext = span.spanContext();
  if (!isSpanContextValid(spanContext)) return NONE;
  return { trace_id: spanContext.traceId, span_id: spanContext.spanId };
}
