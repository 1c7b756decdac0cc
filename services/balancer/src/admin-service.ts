import { setTimeout as sleep } from "node:timers/promises";
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, type ServiceImpl } from "@connectrpc/connect";
import { createPicker, hashString, type PickerKind, pickerKinds } from "@quartet/balancer";
import {
  type BalancerAdminService,
  type EndpointStatus,
  EndpointStatusSchema,
  type Route as RouteMessage,
  RouteSchema,
} from "@quartet/proto/quartet/balancer/v1/admin_pb";
import { ChangeWaiter } from "@quartet/server";
import { BreakerHistory, stateName } from "./breaker-history.ts";
import type { Route } from "./route.ts";

/** Least time between two WatchRoutes messages sent for changes. */
const minChangeIntervalMs = 100;
/** Placed keys and sample keys KeyOwnership takes at most. */
const maxKeys = 1000;
const maxSamples = 100_000;

/**
 * The admin API: routes with their endpoints' state and figures (once or as a stream),
 * draining, switching a route's picker, and where a hashing picker places keys.
 */
export function createAdminService(
  routes: ReadonlyMap<string, Route>,
): ServiceImpl<typeof BalancerAdminService> {
  const history = new BreakerHistory();
  history.attach(routes.values());
  const routeOf = (service: string): Route => {
    const route = routes.get(service);
    if (!route)
      throw new ConnectError(
        `no route for service "${service}"; known: ${[...routes.keys()].join(", ") || "none"}`,
        Code.NotFound,
      );
    return route;
  };
  const describe = (route: Route): RouteMessage =>
    create(RouteSchema, {
      service: route.config.service,
      picker: route.config.picker,
      hashHeader: route.config.hashHeader ?? "",
      timeoutMs: route.config.timeoutMs,
      panic: route.pool.panic,
      endpoints: endpointsOf(route, history),
    });
  const listRoutes = () => {
    // Routes found by discovery after start-up are watched from their first listing.
    history.attach(routes.values());
    return [...routes.values()].map(describe);
  };
  return {
    listRoutes() {
      return { routes: listRoutes() };
    },
    drainEndpoint(req) {
      const route = routeOf(req.service);
      if (!route.drain(req.endpoint, req.drained)) {
        const known = route.resolved().map((a) => a.id ?? a.address);
        throw new ConnectError(
          `${req.service} has no endpoint "${req.endpoint}"; known: ${known.join(", ")}`,
          Code.NotFound,
        );
      }
      return { endpoint: endpointsOf(route, history).find((e) => e.id === req.endpoint) };
    },
    async *watchRoutes(req, ctx) {
      const interval = req.intervalMs === 0 ? 1000 : req.intervalMs;
      if (interval < 100 || interval > 60_000)
        throw new ConnectError(
          `interval_ms must be 0 (default 1000) or 100 to 60000, got ${req.intervalMs}`,
          Code.InvalidArgument,
        );
      const signal = ctx.signal;
      const changes = new ChangeWaiter((changed) => history.listen(changed), signal);
      try {
        while (!signal.aborted) {
          changes.take();
          const sentAt = Date.now();
          yield { routes: listRoutes(), observedAtUnixMs: BigInt(sentAt) };
          // Changes during this pause go out together after it.
          await sleep(minChangeIntervalMs, undefined, { signal }).catch(() => {});
          await changes.wait(sentAt + interval - Date.now());
        }
      } finally {
        changes.close();
      }
    },
    setPicker(req) {
      const route = routeOf(req.service);
      if (!pickerKinds.includes(req.picker as PickerKind))
        throw new ConnectError(
          `unknown picker "${req.picker}"; use one of ${pickerKinds.join(", ")}`,
          Code.InvalidArgument,
        );
      const kind = req.picker as PickerKind;
      route.pool.setPicker(createPicker(kind));
      route.config.picker = kind;
      return { route: describe(route) };
    },
    keyOwnership(req) {
      const route = routeOf(req.service);
      const picker = route.pool.picker;
      if (!picker.hashing)
        throw new ConnectError(
          `${req.service} uses ${picker.kind}, which does not place calls by key; switch it to ring_hash, maglev or bounded_load (SetPicker)`,
          Code.FailedPrecondition,
        );
      if (req.keys.length > maxKeys)
        throw new ConnectError(
          `keys: ${req.keys.length} keys is above the limit of ${maxKeys}`,
          Code.InvalidArgument,
        );
      if (req.samples > maxSamples)
        throw new ConnectError(
          `samples: ${req.samples} is above the limit of ${maxSamples}`,
          Code.InvalidArgument,
        );
      // The same hash of the same header value the proxy computes for a call.
      const owner = (key: string) => picker.pick(hashString(key))?.id ?? "";
      const samples = req.samples === 0 ? 10_000 : req.samples;
      const counts = new Map<string, number>();
      for (let i = 0; i < samples; i++) {
        const id = owner(`key-${i}`);
        if (id) counts.set(id, (counts.get(id) ?? 0) + 1);
      }
      return {
        picker: picker.kind,
        shares: [...counts]
          .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
          .map(([endpoint, n]) => ({ endpoint, share: n / samples })),
        keys: req.keys.map((key) => ({ key, endpoint: owner(key) })),
      };
    },
  };
}

function endpointsOf(route: Route, history: BreakerHistory): EndpointStatus[] {
  const now = Date.now();
  const stats = new Map(route.pool.stats().map((s) => [s.id, s]));
  return route.resolved().map((address) => {
    const id = address.id ?? address.address;
    const s = stats.get(id);
    const f = route.figures(id);
    const endpoint = route.pool.get(id);
    const breaker = endpoint && route.pool.breaker(endpoint);
    const metrics = breaker?.metrics();
    return create(EndpointStatusSchema, {
      id,
      address: address.address,
      weight: address.weight ?? 1,
      healthy: s?.healthy ?? false,
      serving: s?.serving === undefined ? "unknown" : s.serving ? "serving" : "not_serving",
      servingReason: s?.servingReason ?? "drained",
      ejected: s?.ejected ?? false,
      ejections: s?.ejections ?? 0,
      // The pool's outlier detector keeps one breaker per endpoint: open while ejected.
      breakerState: metrics ? stateName(metrics.state) : s?.ejected ? "open" : "closed",
      drained: route.isDrained(id),
      inFlight: s?.inFlight ?? 0,
      rps: f.rps(now),
      p50Ms: f.percentile(0.5),
      p99Ms: f.percentile(0.99),
      calls: BigInt(f.count),
      errors: BigInt(f.errors),
      failureRate: metrics?.failureRate ?? 0,
      failureThreshold: route.pool.failureThreshold,
      transitions: history
        .transitions(route.config.service, id)
        .map((t) => ({ from: t.from, to: t.to, atUnixMs: BigInt(t.atUnixMs) })),
    });
  });
}
