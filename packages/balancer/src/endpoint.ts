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
  /** Relative capacity, a positive integer (1 unless given). */
  weight: number;
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
  if (!Number.isInteger(weight) || weight < 1) {
    throw new Error(
      `endpoint ${init.id ?? init.address}: weight must be a positive integer, got ${weight}`,
    );
  }
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
