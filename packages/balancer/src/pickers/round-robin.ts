import type { Endpoint } from "../endpoint.ts";
import { countEnd, countStart, eligibleEndpoints, type Picker } from "./picker.ts";

/**
 * Round robin over the healthy endpoints. The cursor advances on every pick, not on
 * completion, so calls that overlap in time are spread exactly as evenly as sequential ones.
 */
export function createRoundRobinPicker(): Picker {
  let list: Endpoint[] = [];
  let next = 0;
  return {
    kind: "round_robin",
    hashing: false,
    update(endpoints, ignoreHealth) {
      const previous = list[next];
      list = eligibleEndpoints(endpoints, ignoreHealth);
      // Resume after the endpoint that was due next, so a rebuild does not favour the first.
      const at = previous ? list.indexOf(previous) : -1;
      next = at >= 0 ? at : list.length > 0 ? next % list.length : 0;
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
