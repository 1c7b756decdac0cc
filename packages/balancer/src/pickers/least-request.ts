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
 *
 * Weights: when they differ, the two candidates are sampled in proportion to weight (the
 * second among the others) and compared by calls in flight per unit of weight, so weights 1
 * and 2 get calls 1:2 both when calls do not overlap (ties go to the first sampled) and under
 * load. The samples cost a binary search over cumulative weights, O(log n). Equal weights keep
 * the uniform O(1) sampling.
 */
export function createLeastRequestPicker(options: LeastRequestOptions = {}): Picker {
  const random = options.random ?? Math.random;
  let list: Endpoint[] = [];
  /** Cumulative weights (cumulative[i] = sum of weights of list[0..i]), or empty if all equal. */
  let cumulative = new Float64Array(0);

  /** Index of the endpoint whose cumulative weight interval holds `x` in [0, total). */
  const locate = (x: number): number => {
    let lo = 0;
    let hi = cumulative.length - 1;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (cumulative[mid]! > x) hi = mid;
      else lo = mid + 1;
    }
    return lo;
  };

  /** Two candidates sampled in proportion to weight, compared by calls in flight per weight. */
  const pickWeighted = (n: number): Endpoint => {
    const total = cumulative[n - 1]!;
    const i = locate(random() * total);
    // The second among the others: draw over the total less the first's weight, skipping over
    // the first's interval.
    const start = i === 0 ? 0 : cumulative[i - 1]!;
    const weight = cumulative[i]! - start;
    let x = random() * (total - weight);
    if (x >= start) x += weight;
    let j = locate(x);
    if (j === i) j = i + 1 < n ? i + 1 : i - 1; // rounding at an interval's edge
    const a = list[i]!;
    const b = list[j]!;
    // b.inFlight / b.weight < a.inFlight / a.weight, in exact integer arithmetic.
    return b.inFlight * a.weight < a.inFlight * b.weight ? b : a;
  };

  return {
    kind: "least_request",
    hashing: false,
    update(endpoints, ignoreHealth) {
      list = eligibleEndpoints("least_request", endpoints, ignoreHealth);
      const equal = list.every((e) => e.weight === list[0]!.weight);
      cumulative = new Float64Array(equal ? 0 : list.length);
      let sum = 0;
      if (!equal) for (let i = 0; i < list.length; i++) cumulative[i] = sum += list[i]!.weight;
    },
    pick() {
      const n = list.length;
      if (n <= 1) return list[0];
      if (cumulative.length !== 0) return pickWeighted(n);
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
