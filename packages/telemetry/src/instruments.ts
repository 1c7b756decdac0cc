import { type Histogram, metrics, type Tracer, trace } from "@opentelemetry/api";

const SCOPE = "@quartet/telemetry";

/** Millisecond buckets that resolve sub-millisecond loopback calls as well as slow ones. */
const DURATION_BUCKETS_MS = [
  0.25, 0.5, 1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000,
];

let tracer: Tracer | undefined;
let serverDuration: Histogram | undefined;
let clientDuration: Histogram | undefined;

/** Tracer of the global provider, cached until {@link resetInstruments}. */
export function getTracer(): Tracer {
  tracer ??= trace.getTracer(SCOPE);
  return tracer;
}

/** `rpc.server.duration` (ms) from the global meter provider. */
export function getServerDuration(): Histogram {
  serverDuration ??= metrics.getMeter(SCOPE).createHistogram("rpc.server.duration", {
    description: "Duration of inbound RPCs, from arrival to the end of the response",
    unit: "ms",
    advice: { explicitBucketBoundaries: DURATION_BUCKETS_MS },
  });
  return serverDuration;
}

/** `rpc.client.duration` (ms) from the global meter provider. */
export function getClientDuration(): Histogram {
  clientDuration ??= metrics.getMeter(SCOPE).createHistogram("rpc.client.duration", {
    description: "Duration of outbound RPCs, from the call to the end of the response",
    unit: "ms",
    advice: { explicitBucketBoundaries: DURATION_BUCKETS_MS },
  });
  return clientDuration;
}

/**
 * Forgets cached instruments. The metrics API has no proxy provider, so
 * instruments created before `startTelemetry()` would stay no-ops forever.
 */
export function resetInstruments(): void {
  tracer = undefined;
  serverDuration = undefined;
  clientDuration = undefined;
}
