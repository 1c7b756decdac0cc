import type { Endpoint } from "../endpoint.ts";
import { hashString } from "../hash.ts";

/** A hash ring: sorted 32-bit positions, each owned by one endpoint. */
export interface Ring {
  readonly endpoints: Endpoint[];
  readonly positions: Uint32Array;
  /** Index into `endpoints` for each position. */
  readonly owners: Int32Array;
}

/**
 * Places `replicas x weight` virtual nodes per endpoint at XXH32(`<id>#<n>`). A node's place
 * depends only on its endpoint's id, so adding or removing an endpoint moves only the keys
 * that land on that endpoint's nodes.
 */
export function buildRing(endpoints: Endpoint[], replicas: number): Ring {
  const count = endpoints.reduce((s, e) => s + e.weight * replicas, 0);
  const points = new Float64Array(count);
  const slots = new Int32Array(count);
  let n = 0;
  endpoints.forEach((endpoint, slot) => {
    for (let r = 0; r < endpoint.weight * replicas; r++) {
      points[n] = hashString(`${endpoint.id}#${r}`);
      slots[n++] = slot;
    }
  });
  const order = Array.from({ length: count }, (_, i) => i);
  order.sort((a, b) => points[a]! - points[b]! || slots[a]! - slots[b]!);
  const positions = new Uint32Array(count);
  const owners = new Int32Array(count);
  order.forEach((from, to) => {
    positions[to] = points[from]!;
    owners[to] = slots[from]!;
  });
  return { endpoints, positions, owners };
}

/** Index of the first ring position at or after `hash`, wrapping to 0. O(log n). */
export function ringIndex(ring: Ring, hash: number): number {
  const positions = ring.positions;
  let lo = 0;
  let hi = positions.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (positions[mid]! < hash) lo = mid + 1;
    else hi = mid;
  }
  return lo === positions.length ? 0 : lo;
}
