import { context } from "@opentelemetry/api";
import { injectMessageHeaders } from "@quartet/telemetry";

type Headers = { [name: string]: string };

/**
 * For one Publish, Enqueue or Request call: gives a message that carries no trace context of
 * its own the context of the call that delivered it (the call's server span, or the caller's
 * context when spans are off), so that whoever processes it continues the caller's trace. A
 * curl or browser caller sends a `traceparent` header, never message headers.
 *
 * Returns the headers unchanged when they have a `traceparent` (any case) or there is no
 * trace to pass on; otherwise a copy with `traceparent` (and `tracestate`, `baggage` when
 * the call has them, unless the message has its own).
 */
export function callerTrace(): (headers: Headers) => Headers {
  let fields: [string, string][] | undefined;
  return (headers) => {
    for (const name in headers) {
      if (name.length === 11 && name.toLowerCase() === "traceparent") return headers;
    }
    fields ??= Object.entries(injectMessageHeaders({}, context.active()));
    if (fields.length === 0) return headers;
    const out = { ...headers };
    const has = new Set(Object.keys(headers).map((n) => n.toLowerCase()));
    for (const [name, value] of fields) if (!has.has(name)) out[name] = value;
    return out;
  };
}
