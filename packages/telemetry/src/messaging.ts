import { type Context, context, propagation, type TextMapGetter } from "@opentelemetry/api";

/** Reads message headers, matching names case-insensitively as HTTP does. */
const messageHeadersGetter: TextMapGetter<Record<string, string>> = {
  get(carrier, key) {
    const exact = carrier[key];
    if (exact !== undefined) return exact;
    for (const name of Object.keys(carrier)) {
      if (name.toLowerCase() === key) return carrier[name];
    }
    return undefined;
  },
  keys(carrier) {
    return Object.keys(carrier);
  },
};

/**
 * Writes the trace context and baggage of `ctx` (default: the active context) into
 * message headers as W3C `traceparent`, `tracestate` and `baggage`, for messages that
 * travel through the broker. Returns the same headers object.
 */
export function injectMessageHeaders(
  headers: Record<string, string>,
  ctx: Context = context.active(),
): Record<string, string> {
  propagation.inject(ctx, headers);
  return headers;
}

/**
 * Reads W3C trace context and baggage from message headers into a context based on
 * `ctx` (default: the active context). Start the consumer span with it as parent
 * (or link to it) to continue the producer's trace.
 */
export function extractMessageContext(
  headers: Record<string, string>,
  ctx: Context = context.active(),
): Context {
  return propagation.extract(ctx, headers, messageHeadersGetter);
}
