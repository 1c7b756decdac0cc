import type { ConnectError } from "@connectrpc/connect";
import type { EndpointAddress, Resolver, ResolverListener } from "@quartet/balancer";
import type { RegistryClient } from "./client.ts";
import { type Registered, type RegistryWatch, watchRegistry } from "./watch.ts";

/**
 * Endpoints for a balancer from registered instances: one per address (an instance restarted
 * on the same address before its old key expired is one endpoint, the newest registration's
 * weight), in a stable order.
 */
export function endpointsOf(instances: readonly Registered[]): EndpointAddress[] {
  const byAddress = new Map<string, Registered>();
  for (const i of instances) {
    const seen = byAddress.get(i.address);
    if (!seen || seen.modRevision < i.modRevision) byAddress.set(i.address, i);
  }
  return [...byAddress.values()]
    .sort((a, b) => (a.address < b.address ? -1 : a.address > b.address ? 1 : 0))
    .map((i) => ({ id: i.address, address: i.address, weight: i.weight }));
}

export interface RegistryResolverOptions {
  client: RegistryClient;
  /** Fully qualified proto service name whose instances to resolve. */
  service: string;
  onError?: (error: ConnectError) => void;
}

/** A Resolver that also stops its watch. */
export interface RegistryResolver extends Resolver {
  close(): void;
}

/**
 * @quartet/balancer's Resolver over the registry: watches `/registry/<service>/` and hands
 * every subscriber the full endpoint list after the first read and after each change. The
 * watch starts with the first subscriber and stops with close().
 */
export function registryResolver(options: RegistryResolverOptions): RegistryResolver {
  const listeners = new Set<ResolverListener>();
  let current: EndpointAddress[] | undefined;
  let watch: RegistryWatch | undefined;
  let closed = false;
  return {
    subscribe(listener) {
      listeners.add(listener);
      if (current) listener(current);
      if (!watch && !closed) {
        watch = watchRegistry({
          client: options.client,
          service: options.service,
          ...(options.onError ? { onError: options.onError } : {}),
          onChange: (instances) => {
            current = endpointsOf(instances);
            for (const l of listeners) l(current);
          },
        });
      }
      return () => listeners.delete(listener);
    },
    close() {
      closed = true;
      watch?.close();
      listeners.clear();
    },
  };
}
