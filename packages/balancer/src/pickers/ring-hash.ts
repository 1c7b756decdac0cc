import type { Random } from "@quartet/determinism";
import { countEnd, countStart, eligibleEndpoints, type Picker } from "./picker.ts";
import { buildRing, type Ring, type RingOptions, ringIndex, ringSettings } from "./ring.ts";

/** `replicas`, `minRingSize`, `maxRingSize`: see `RingOptions`. */
export interface RingHashOptions extends RingOptions {
  /** Used for calls that carry no key. */
  random?: Random;
}

/**
 * Consistent hashing on a ring of virtual nodes (Karger et al.; Envoy's ring_hash): a key
 * goes to the first node clockwise from its hash. A binary search per pick, O(log n).
 */
export function createRingHashPicker(options: RingHashOptions = {}): Picker {
  const settings = ringSettings("ring_hash", options);
  const random = options.random ?? Math.random;
  let ring: Ring = buildRing([], settings);
  return {
    kind: "ring_hash",
    hashing: true,
    update(endpoints, ignoreHealth) {
      ring = buildRing(eligibleEndpoints("ring_hash", endpoints, ignoreHealth), settings);
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
