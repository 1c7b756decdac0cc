import { createManualResolver, type ManualResolver } from "@quartet/balancer";
import type { ConsensusClient } from "@quartet/consensus-service/client";
import { endpointsOf, type Registered, watchRegistry } from "@quartet/registry";
import type { Logger } from "@quartet/server";
import { Route } from "./route.ts";
import type { RouteDefaults } from "./routes-config.ts";

export interface DiscoveryOptions {
  client: ConsensusClient;
  /** The gateway's live route table: discovered routes are added to it. */
  routes: Map<string, Route>;
  /** Services whose routes must not come from the registry: static routes win, and the
   * gateway's own services are answered by the gateway. */
  skip: ReadonlySet<string>;
  defaults: RouteDefaults;
  logger: Logger;
}

export interface Discovery {
  /** Resolves once the registry has been read once and its routes are in place. */
  readonly ready: Promise<void>;
  close(): void;
}

/**
 * Routes from the service registry: one route per proto service name registered, whose
 * endpoints follow the registry live. A service whose last instance leaves keeps its route
 * with no endpoints (callers get Unavailable, not Unimplemented, until one comes back).
 * Removed endpoints stop getting new calls; calls already on them finish (see Route).
 */
export function startDiscovery(options: DiscoveryOptions): Discovery {
  const { routes, skip, logger } = options;
  const resolvers = new Map<string, ManualResolver>();
  const watch = watchRegistry({
    client: options.client,
    onError: (err) =>
      logger.warn({ err: err.message }, "registry read failed: keeping the last routes, retrying"),
    onChange: (instances) => {
      const byService = new Map<string, Registered[]>();
      for (const i of instances) {
        if (skip.has(i.service)) continue;
        const list = byService.get(i.service) ?? [];
        list.push(i);
        byService.set(i.service, list);
      }
      for (const [service, resolver] of resolvers) {
        if (!byService.has(service)) resolver.set([]);
      }
      for (const [service, list] of byService) {
        const endpoints = endpointsOf(list);
        const resolver = resolvers.get(service);
        if (resolver) {
          resolver.set(endpoints);
          continue;
        }
        const created = createManualResolver(endpoints);
        resolvers.set(service, created);
        routes.set(service, new Route({ service, resolver: created, ...options.defaults }));
        logger.info({ service, endpoints: endpoints.length }, "route discovered");
      }
    },
  });
  return { ready: watch.ready, close: () => watch.close() };
}
