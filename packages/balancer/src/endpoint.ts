/**
 * One backend a balancer can send calls to. Pickers read `weight`, `healthy` and `inFlight`;
 * the object is kept for as long as the endpoint stays in the resolver's list, so counts
 * survive membership and health changes.
 */
export interface Endpoint {
  /** Stable identity; hashing pickers place the endpoint by it. */
  readonly id: string;
  /** Base URL, e.g. `http://127.0.0.1:7201`. */
  readonly address: string;
  /**
   * Relative capacity, an integer >= 1 (1 unless given). Read-only: change it with
   * `setEndpointWeight`, which validates it (pickers check it again in `update()`).
   */
  readonly weight: number;
  /** False while an active health check fails or outlier detection has ejected it. */
  healthy: boolean;
  /** Calls started on this endpoint and not yet finished. */
  inFlight: number;
}

/** What a resolver announces for one endpoint. */
export interface EndpointAddress {
  /** Defaults to `address`. */
  id?: string;
  address: string;
  weight?: number;
}

/** Creates an endpoint, validating its weight and address. */
export function createEndpoint(init: EndpointAddress & { healthy?: boolean }): Endpoint {
  const weight = init.weight ?? 1;
  assertWeight(init.id ?? init.address, weight);
  if (!URL.canParse(init.address)) {
    throw new Error(
      `endpoint ${init.id ?? init.address}: address must be a URL like http://127.0.0.1:7201, got "${init.address}"`,
    );
  }
  return {
    id: init.id ?? init.address,
    address: init.address,
    weight,
    healthy: init.healthy ?? true,
    inFlight: 0,
  };
}

/**
 * Weights are integers >= 1, as in Envoy (a zero, negative, fractional or NaN weight has no
 * meaning for a share of calls, and an all-zero set none at all). Safe integers only, so sums
 * stay exact.
 */
export function isValidWeight(weight: number): boolean {
  return Number.isSafeInteger(weight) && weight >= 1;
}

function assertWeight(id: string, weight: number): void {
  if (!isValidWeight(weight))
    throw new Error(`endpoint ${id}: weight must be an integer >= 1, got ${weight}`);
}

/**
 * Changes an endpoint's weight after validating it. Pickers see the new weight at their next
 * `update()` (the pool calls it on every resolver update).
 */
export function setEndpointWeight(endpoint: Endpoint, weight: number): void {
  assertWeight(endpoint.id, weight);
  (endpoint as { weight: number }).weight = weight;
}
