import type { Endpoint } from "../endpoint.ts";
import { countEnd, eligibleEndpoints, type Picker } from "./picker.ts";

/**
 * Least connections: the endpoint with the fewest calls in flight, ties going to the one
 * picked least recently (so idle endpoints take turns). An indexed binary min-heap keeps the
 * order: O(1) to find the minimum and O(log n) to reorder when a count or pick time changes.
 */
export function createLeastConnectionsPicker(): Picker {
  let slots: Endpoint[] = [];
  const slotOf = new Map<Endpoint, number>();
  let heap = new Int32Array(0); // heap position -> slot
  let position = new Int32Array(0); // slot -> heap position
  let lastPick = new Float64Array(0);
  let clock = 0;

  const less = (a: number, b: number) => {
    const da = slots[a]!.inFlight - slots[b]!.inFlight;
    return da < 0 || (da === 0 && lastPick[a]! < lastPick[b]!);
  };
  const swap = (i: number, j: number) => {
    const a = heap[i]!;
    const b = heap[j]!;
    heap[i] = b;
    heap[j] = a;
    position[b] = i;
    position[a] = j;
  };
  const siftUp = (i: number) => {
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!less(heap[i]!, heap[parent]!)) return;
      swap(i, parent);
      i = parent;
    }
  };
  const siftDown = (i: number) => {
    const n = slots.length;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let smallest = i;
      if (l < n && less(heap[l]!, heap[smallest]!)) smallest = l;
      if (r < n && less(heap[r]!, heap[smallest]!)) smallest = r;
      if (smallest === i) return;
      swap(i, smallest);
      i = smallest;
    }
  };

  return {
    kind: "least_connections",
    hashing: false,
    update(endpoints, ignoreHealth) {
      const previous = new Map(slots.map((e, i) => [e, lastPick[i]!]));
      slots = eligibleEndpoints("least_connections", endpoints, ignoreHealth);
      slotOf.clear();
      heap = new Int32Array(slots.length);
      position = new Int32Array(slots.length);
      lastPick = new Float64Array(slots.length);
      for (let i = 0; i < slots.length; i++) {
        slotOf.set(slots[i]!, i);
        heap[i] = i;
        position[i] = i;
        lastPick[i] = previous.get(slots[i]!) ?? 0;
      }
      for (let i = (slots.length >> 1) - 1; i >= 0; i--) siftDown(i);
    },
    pick() {
      if (slots.length === 0) return undefined;
      const slot = heap[0]!;
      lastPick[slot] = ++clock;
      siftDown(0);
      return slots[slot];
    },
    callStarted(endpoint) {
      endpoint.inFlight++;
      const slot = slotOf.get(endpoint);
      if (slot !== undefined) siftDown(position[slot]!);
    },
    callEnded(endpoint) {
      countEnd(endpoint);
      const slot = slotOf.get(endpoint);
      if (slot !== undefined) siftUp(position[slot]!);
    },
  };
}
