import type { Random } from "@quartet/determinism";
import type { Endpoint } from "../endpoint.ts";
import { countEnd, countStart, eligibleEndpoints, type Picker } from "./picker.ts";

export interface RoundRobinOptions {
  /** Chooses the starting endpoint; default `Math.random`, `seededRandom(seed)` to reproduce. */
  random?: Random;
}

/**
 * Round robin over the healthy endpoints. The cursor advances on every pick, not on
 * completion, so calls that overlap in time are spread exactly as evenly as sequential ones.
 * It starts at a random endpoint (as gRPC and Envoy do), so many clients started together do
 * not all send their first calls to the first endpoint.
 */
export function createRoundRobinPicker(options: RoundRobinOptions = {}): Picker {
  const random = options.random ?? Math.random;
  let list: Endpoint[] = [];
  let next = 0;
  let started = false;
  return {
    kind: "round_robin",
    hashing: false,
    update(endpoints, ignoreHealth) {
      const previous = list[next];
      list = eligibleEndpoints("round_robin", endpoints, ignoreHealth);
      // Resume after the endpoint that was due next, so a rebuild does not favour the first.
      const at = previous ? list.indexOf(previous) : -1;
      if (!started && list.length > 0) {
        started = true;
        next = Math.floor(random() * list.length);
      } else {
        next = at >= 0 ? at : list.length > 0 ? next % list.length : 0;
      }
    },
    pick() {
      const n = list.length;
      if (n === 0) return undefined;
      const endpoint = list[next]!;
      next = next + 1 === n ? 0 : next + 1;
      return endpoint;
    },
    callStarted: countStart,
    callEnded: countEnd,
  };
}
