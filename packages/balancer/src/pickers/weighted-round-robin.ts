import type { Endpoint } from "../endpoint.ts";
import { countEnd, countStart, eligibleEndpoints, type Picker } from "./picker.ts";

export interface WeightedRoundRobinOptions {
  /**
   * Longest schedule precomputed, in picks (default 65,536). Weights whose reduced sum exceeds
   * it are scaled down proportionally, keeping every endpoint at least once.
   */
  maxCycle?: number;
}

/**
 * nginx's smooth weighted round robin. Each step every endpoint's current weight grows by its
 * weight, the largest is chosen and lowered by the total, which interleaves picks (weights
 * 5,1,1 give a a b a c a a, not a a a a a b c). The whole cycle (sum of weights, divided by
 * their gcd) is computed once per update so that a pick is an array read.
 */
export function createWeightedRoundRobinPicker(options: WeightedRoundRobinOptions = {}): Picker {
  const maxCycle = options.maxCycle ?? 65_536;
  let cycle: Endpoint[] = [];
  let next = 0;
  return {
    kind: "weighted_round_robin",
    hashing: false,
    update(endpoints, ignoreHealth) {
      cycle = smoothSchedule(
        eligibleEndpoints("weighted_round_robin", endpoints, ignoreHealth),
        maxCycle,
      );
      if (next >= cycle.length) next = 0;
    },
    pick() {
      const n = cycle.length;
      if (n === 0) return undefined;
      const endpoint = cycle[next]!;
      next = next + 1 === n ? 0 : next + 1;
      return endpoint;
    },
    callStarted: countStart,
    callEnded: countEnd,
  };
}

function gcd(a: number, b: number): number {
  while (b !== 0) [a, b] = [b, a % b];
  return a;
}

/** One full cycle of nginx's smooth weighted round robin over `list`. */
export function smoothSchedule(list: readonly Endpoint[], maxCycle: number): Endpoint[] {
  if (list.length === 0) return [];
  let weights = list.map((e) => e.weight);
  const divisor = weights.reduce(gcd);
  weights = weights.map((w) => w / divisor);
  let total = weights.reduce((s, w) => s + w, 0);
  if (total > maxCycle) {
    const scale = maxCycle / total;
    weights = weights.map((w) => Math.max(1, Math.floor(w * scale)));
    total = weights.reduce((s, w) => s + w, 0);
  }
  const current = new Float64Array(list.length);
  const schedule: Endpoint[] = new Array(total);
  for (let step = 0; step < total; step++) {
    let best = 0;
    for (let i = 0; i < list.length; i++) {
      current[i]! += weights[i]!;
      if (current[i]! > current[best]!) best = i;
    }
    current[best]! -= total;
    schedule[step] = list[best]!;
  }
  return schedule;
}
