import type { Random } from "@quartet/determinism";
import type { Endpoint } from "../endpoint.ts";
import { countEnd, countStart, eligibleEndpoints, type Picker } from "./picker.ts";

export interface LeastRequestOptions {
  /** Uniform source in [0, 1); inject `seededRandom(seed)` for reproducible picks. */
  random?: Random;
}

/**
 * Least request with the power of two choices (Envoy's default): sample two distinct
 * endpoints at random and take the one with fewer calls in flight (the first sampled on a
 * tie). O(1) per pick, and it avoids the herd that pure least-connections sends to a
 * just-recovered endpoint when many clients see the same counts.
 */
export function createLeastRequestPicker(options: LeastRequestOptions = {}): Picker {
  const random = options.random ?? Math.random;
  let list: Endpoint[] = [];
  return {
    kind: "least_request",
    hashing: false,
    update(endpoints, ignoreHealth) {
      list = eligibleEndpoints(endpoints, ignoreHealth);
    },
    pick() {
      const n = list.length;
      if (n <= 1) return list[0];
      const i = Math.floor(random() * n);
      let j = Math.floor(random() * (n - 1));
      if (j >= i) j++;
      const a = list[i]!;
      const b = list[j]!;
      return b.inFlight < a.inFlight ? b : a;
    },
    callStarted: countStart,
    callEnded: countEnd,
  };
}
