import type { EndpointAddress } from "./endpoint.ts";

/** Receives the complete endpoint list every time it changes. */
export type ResolverListener = (endpoints: readonly EndpointAddress[]) => void;

/**
 * Where endpoints come from. A resolver calls each listener with the full current list
 * (synchronously on subscribe if it already knows one) and again on every change. Dynamic
 * sources (a service registry, DNS) implement this; the consensus service's registry plugs
 * in here.
 */
export interface Resolver {
  /** Starts delivering lists to `listener`; returns a function that stops it. */
  subscribe(listener: ResolverListener): () => void;
}

function normalize(list: readonly (string | EndpointAddress)[]): EndpointAddress[] {
  return list.map((e) => (typeof e === "string" ? { address: e } : { ...e }));
}

/** A fixed list of base URLs or endpoint descriptions. */
export function staticResolver(endpoints: readonly (string | EndpointAddress)[]): Resolver {
  const list = normalize(endpoints);
  return {
    subscribe(listener) {
      listener(list);
      return () => {};
    },
  };
}

/** A resolver whose list is replaced by calling `set`, e.g. from a registry watch. */
export interface ManualResolver extends Resolver {
  set(endpoints: readonly (string | EndpointAddress)[]): void;
}

/** Creates a dynamic resolver fed by hand (or by any watch loop that calls `set`). */
export function createManualResolver(
  initial?: readonly (string | EndpointAddress)[],
): ManualResolver {
  let current: EndpointAddress[] | undefined = initial ? normalize(initial) : undefined;
  const listeners = new Set<ResolverListener>();
  return {
    subscribe(listener) {
      listeners.add(listener);
      if (current) listener(current);
      return () => listeners.delete(listener);
    },
    set(endpoints) {
      current = normalize(endpoints);
      for (const listener of listeners) listener(current);
    },
  };
}
