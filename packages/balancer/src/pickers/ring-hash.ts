import type { Random } from "@quartet/determinism";
import { countEnd, countStart, eligibleEndpoints, type Picker } from "./picker.ts";
import { buildRing, type Ring, ringIndex } from "./ring.ts";

export interface RingHashOptions {
  /** Virtual nodes per unit of weight (default 160, as ketama). More nodes, smoother load. */
  replicas?: number;
  /** Used for calls that carry no key. */
  random?: Random;
}

/**
 * Consistent hashing on a ring of virtual nodes (Karger et al.; Envoy's ring_hash): a key
 * goes to the first node clockwise from its hash. A binary search per pick, O(log n).
 */
export function createRingHashPicker(options: RingHashOptions = {}): Picker {
  const replicas = options.replicas ?? 160;
  const random = options.random ?? Math.random;
  let ring: Ring = buildRing([], replicas);
  return {
    kind: "ring_hash",
    hashing: true,
    update(endpoints, ignoreHealth) {
      ring = buildRing(eligibleEndpoints(endpoints, ignoreHealth), replicas);
    },
    pick(hash) {
      if (ring.positions.length === 0) return undefined;
      const h = hash ?? (random() * 4294967296) >>> 0;
      return ring.endpoints[ring.owners[ringIndex(ring, h)]!];
    },
    callStarted: countStart,
    callEnded: countEnd,
  };
}
