import type { Random } from "@quartet/determinism";
import type { Endpoint } from "../endpoint.ts";
import { countEnd, eligibleEndpoints, type Picker } from "./picker.ts";
import { buildRing, type Ring, type RingOptions, ringIndex, ringSettings } from "./ring.ts";

/** `replicas`, `minRingSize`, `maxRingSize` of the underlying ring: see `RingOptions`. */
export interface BoundedLoadOptions extends RingOptions {
  /** Allowed overload e: no endpoint takes more than ceil((1 + e) x mean load). Default 0.25. */
  epsilon?: number;
  /** Used for calls that carry no key. */
  random?: Random;
}

/**
 * Consistent hashing with bounded loads (Mirrokni, Thorup, Zadimoghaddam 2018; Google Cloud
 * and HAProxy's hash-balance-factor). Load is calls in flight. A key goes to its home node on
 * the ring unless that endpoint already holds ceil((1 + e) x (total + 1) / n) calls; then it
 * walks clockwise to the next endpoint under that bound. So a key leaves home only while home
 * is above (1 + e) x the mean, and max/mean never exceeds 1 + e (up to rounding). A pick is a
 * binary search plus, when home is full, an expected O(1/e) walk.
 */
export function createBoundedLoadPicker(options: BoundedLoadOptions = {}): Picker {
  const epsilon = options.epsilon ?? 0.25;
  if (!(epsilon > 0)) throw new Error(`bounded load: epsilon must be > 0, got ${epsilon}`);
  const settings = ringSettings("bounded_load", options);
  const random = options.random ?? Math.random;
  let ring: Ring = buildRing([], settings);
  let members = new Set<Endpoint>();
  let totalLoad = 0;
  let totalWeight = 0;

  return {
    kind: "bounded_load",
    hashing: true,
    update(endpoints, ignoreHealth) {
      const list = eligibleEndpoints("bounded_load", endpoints, ignoreHealth);
      ring = buildRing(list, settings);
      members = new Set(list);
      totalLoad = list.reduce((s, e) => s + e.inFlight, 0);
      totalWeight = list.reduce((s, e) => s + e.weight, 0);
    },
    pick(hash) {
      const size = ring.positions.length;
      if (size === 0) return undefined;
      const h = hash ?? (random() * 4294967296) >>> 0;
      const start = ringIndex(ring, h);
      // Capacity per unit of weight, counting the call being placed.
      const perWeight = ((1 + epsilon) * (totalLoad + 1)) / totalWeight;
      for (let step = 0; step < size; step++) {
        const i = start + step < size ? start + step : start + step - size;
        const endpoint = ring.endpoints[ring.owners[i]!]!;
        if (endpoint.inFlight + 1 <= Math.ceil(perWeight * endpoint.weight)) return endpoint;
      }
      return ring.endpoints[ring.owners[start]!];
    },
    callStarted(endpoint) {
      endpoint.inFlight++;
      if (members.has(endpoint)) totalLoad++;
    },
    callEnded(endpoint) {
      if (endpoint.inFlight > 0 && members.has(endpoint)) totalLoad--;
      countEnd(endpoint);
    },
  };
}
