import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, type ServiceImpl } from "@connectrpc/connect";
import {
  type BalancerAdminService,
  type EndpointStatus,
  EndpointStatusSchema,
} from "@quartet/proto/quartet/balancer/v1/admin_pb";
import type { Route } from "./route.ts";

/** The admin API: routes with their endpoints' state and figures, and draining. */
export function createAdminService(
  routes: ReadonlyMap<string, Route>,
): ServiceImpl<typeof BalancerAdminService> {
  return {
    listRoutes() {
      return {
        routes: [...routes.values()].map((route) => ({
          service: route.config.service,
          picker: route.config.picker,
          hashHeader: route.config.hashHeader ?? "",
          timeoutMs: route.config.timeoutMs,
          panic: route.pool.panic,
          endpoints: endpointsOf(route),
        })),
      };
    },
    drainEndpoint(req) {
      const route = routes.get(req.service);
      if (!route)
        throw new ConnectError(
          `no route for service "${req.service}"; known: ${[...routes.keys()].join(", ") || "none"}`,
          Code.NotFound,
        );
      if (!route.drain(req.endpoint, req.drained)) {
        const known = route.resolved().map((a) => a.id ?? a.address);
        throw new ConnectError(
          `${req.service} has no endpoint "${req.endpoint}"; known: ${known.join(", ")}`,
          Code.NotFound,
        );
      }
      return { endpoint: endpointsOf(route).find((e) => e.id === req.endpoint) };
    },
  };
}

function endpointsOf(route: Route): EndpointStatus[] {
  const now = Date.now();
  const stats = new Map(route.pool.stats().map((s) => [s.id, s]));
  return route.resolved().map((address) => {
    const id = address.id ?? address.address;
    const s = stats.get(id);
    const f = route.figures(id);
    return create(EndpointStatusSchema, {
      id,
      address: address.address,
      weight: address.weight ?? 1,
      healthy: s?.healthy ?? false,
      serving: s?.serving === undefined ? "unknown" : s.serving ? "serving" : "not_serving",
      servingReason: s?.servingReason ?? "drained",
      ejected: s?.ejected ?? false,
      ejections: s?.ejections ?? 0,
      // The pool's outlier detector is the endpoint's breaker: open while ejected.
      breakerState: s?.ejected ? "open" : "closed",
      drained: route.isDrained(id),
      inFlight: s?.inFlight ?? 0,
      rps: f.rps(now),
      p50Ms: f.percentile(0.5),
      p99Ms: f.percentile(0.99),
      calls: BigInt(f.count),
      errors: BigInt(f.errors),
    });
  });
}
