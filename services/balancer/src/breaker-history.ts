import type { EndpointPool } from "@quartet/balancer";
import type { Route } from "./route.ts";

/** Transitions kept per endpoint: enough for the dashboard's timeline, bounded. */
const kept = 32;

export interface Transition {
  from: string;
  to: string;
  atUnixMs: number;
}

/** A breaker state as the admin API spells it (half-open -> half_open). */
export const stateName = (state: string): string => state.replace("-", "_");

/**
 * The last state changes of every endpoint's circuit breaker, recorded from the gateway's
 * start, and one place to hear about any change worth a new WatchRoutes message (membership,
 * health, panic, breaker state).
 */
export class BreakerHistory {
  readonly #transitions = new Map<string, Transition[]>();
  readonly #watchedPools = new WeakSet<object>();
  readonly #watchedBreakers = new WeakSet<NonNullable<ReturnType<EndpointPool["breaker"]>>>();
  readonly #listeners = new Set<() => void>();

  /** Watches every route's endpoints (idempotent: call again when routes are added). */
  attach(routes: Iterable<Route>): void {
    for (const route of routes) {
      if (this.#watchedPools.has(route.pool)) continue;
      this.#watchedPools.add(route.pool);
      const service = route.config.service;
      const watchBreakers = () => {
        for (const endpoint of route.pool.endpoints()) {
          const breaker = route.pool.breaker(endpoint);
          if (!breaker || this.#watchedBreakers.has(breaker)) continue;
          this.#watchedBreakers.add(breaker);
          breaker.on("stateChange", (event) => {
            this.#record(`${service}\n${endpoint.id}`, {
              from: stateName(event.from),
              to: stateName(event.to),
              atUnixMs: Date.now(),
            });
            this.#notify();
          });
        }
      };
      route.pool.onChange(() => {
        watchBreakers();
        this.#notify();
      });
      watchBreakers();
    }
  }

  transitions(service: string, endpoint: string): Transition[] {
    return this.#transitions.get(`${service}\n${endpoint}`) ?? [];
  }

  /** Calls `listener` after any change until the returned function is called. */
  listen(listener: () => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  #record(key: string, transition: Transition): void {
    let list = this.#transitions.get(key);
    if (!list) {
      list = [];
      this.#transitions.set(key, list);
    }
    list.push(transition);
    if (list.length > kept) list.splice(0, list.length - kept);
  }

  #notify(): void {
    for (const listener of this.#listeners) listener();
  }
}
