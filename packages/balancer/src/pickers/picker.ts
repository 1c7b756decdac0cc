import { type Endpoint, isValidWeight } from "../endpoint.ts";

/** Names of the built-in pickers. */
export type PickerKind =
  | "round_robin"
  | "weighted_round_robin"
  | "least_connections"
  | "least_request"
  | "ring_hash"
  | "maglev"
  | "bounded_load";

/**
 * Chooses the endpoint for each call. Every picker does O(1) or O(log n) work per pick and
 * allocates nothing per pick: its structures are rebuilt in `update()`, which runs only when
 * membership, weights or health change.
 */
export interface Picker {
  readonly kind: PickerKind;
  /** True for pickers that place calls by a key hash (ring hash, Maglev, bounded load). */
  readonly hashing: boolean;
  /**
   * Replaces the endpoint list. Unhealthy endpoints are skipped unless `ignoreHealth` is set
   * (panic mode: too few are healthy, so spread over all of them).
   */
  update(endpoints: readonly Endpoint[], ignoreHealth?: boolean): void;
  /**
   * Chooses an endpoint, or undefined when none is eligible. `hash` is the call's 32-bit key
   * hash (see `hashKey`); hashing pickers pick at random without one, others ignore it.
   */
  pick(hash?: number): Endpoint | undefined;
  /** Records that a call started on `endpoint`: increments its `inFlight`. */
  callStarted(endpoint: Endpoint): void;
  /** Records that a call on `endpoint` finished: decrements its `inFlight`. */
  callEnded(endpoint: Endpoint): void;
}

/**
 * The endpoints a picker may choose from, in id order so that rebuilds are deterministic.
 * Refuses a weight that is not an integer >= 1 (an `Endpoint` may be built by hand, skipping
 * `createEndpoint`), so no picker divides by or loops on a zero, negative or NaN weight.
 */
export function eligibleEndpoints(
  kind: PickerKind,
  endpoints: readonly Endpoint[],
  ignoreHealth = false,
): Endpoint[] {
  for (const e of endpoints)
    if (!isValidWeight(e.weight))
      throw new Error(
        `${kind}: endpoint ${e.id} has weight ${e.weight}; weights must be integers >= 1`,
      );
  const list = ignoreHealth ? [...endpoints] : endpoints.filter((e) => e.healthy);
  return list.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
}

/** Default in-flight bookkeeping for pickers that keep no per-load structure. */
export function countStart(endpoint: Endpoint): void {
  endpoint.inFlight++;
}

export function countEnd(endpoint: Endpoint): void {
  if (endpoint.inFlight > 0) endpoint.inFlight--;
}
