import { type Attributes, type MeterProvider, metrics } from "@opentelemetry/api";
import type { EndpointPool } from "./pool.ts";

/**
 * Registers observable OTel instruments that read the pool's per-endpoint figures at each
 * collection, so calls themselves pay nothing for metrics.
 */
export function registerMetrics(
  name: string,
  pool: EndpointPool,
  provider: MeterProvider = metrics.getMeterProvider(),
): { unregister(): void } {
  const meter = provider.getMeter("@quartet/balancer");
  const inFlight = meter.createObservableGauge("quartet.balancer.endpoint.in_flight", {
    description: "Calls in flight on the endpoint",
    unit: "{call}",
  });
  const healthy = meter.createObservableGauge("quartet.balancer.endpoint.healthy", {
    description: "1 if the endpoint takes calls (health check passing, not ejected), else 0",
  });
  const calls = meter.createObservableCounter("quartet.balancer.endpoint.calls", {
    description: "Calls finished on the endpoint",
    unit: "{call}",
  });
  const failures = meter.createObservableCounter("quartet.balancer.endpoint.failures", {
    description: "Calls on the endpoint that failed",
    unit: "{call}",
  });
  const latency = meter.createObservableGauge("quartet.balancer.endpoint.latency_ewma", {
    description: "Exponentially weighted moving average of call latency",
    unit: "ms",
  });
  const ejections = meter.createObservableCounter("quartet.balancer.endpoint.ejections", {
    description: "Times outlier detection ejected the endpoint",
  });
  const panic = meter.createObservableGauge("quartet.balancer.panic", {
    description: "1 while too few endpoints are healthy and health is ignored",
  });
  const callback = (result: { observe(i: unknown, v: number, a?: Attributes): void }) => {
    result.observe(panic, pool.panic ? 1 : 0, { "balancer.name": name });
    for (const s of pool.stats()) {
      const attributes = {
        "balancer.name": name,
        "endpoint.id": s.id,
        "server.address": s.address,
      };
      result.observe(inFlight, s.inFlight, attributes);
      result.observe(healthy, s.healthy ? 1 : 0, attributes);
      result.observe(calls, s.total, attributes);
      result.observe(failures, s.failures, attributes);
      result.observe(latency, s.latencyEwmaMs, attributes);
      result.observe(ejections, s.ejections, attributes);
    }
  };
  const observables = [inFlight, healthy, calls, failures, latency, ejections, panic];
  meter.addBatchObservableCallback(
    callback as Parameters<typeof meter.addBatchObservableCallback>[0],
    observables,
  );
  return {
    unregister() {
      meter.removeBatchObservableCallback(
        callback as Parameters<typeof meter.addBatchObservableCallback>[0],
        observables,
      );
    },
  };
}
