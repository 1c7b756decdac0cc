import type { Random } from "@quartet/determinism";
import type { Endpoint } from "../endpoint.ts";
import { hashString } from "../hash.ts";
import { countEnd, countStart, eligibleEndpoints, type Picker } from "./picker.ts";

export interface MaglevOptions {
  /** Lookup table size, a prime much larger than the endpoint count (default 65,537, as Envoy). */
  tableSize?: number;
  /** Used for calls that carry no key. */
  random?: Random;
}

function isPrime(n: number): boolean {
  if (!Number.isInteger(n) || n < 2) return false;
  for (let d = 2; d * d <= n; d++) if (n % d === 0) return false;
  return true;
}

/**
 * Maglev hashing (Eisenbud et al., NSDI 2016): each endpoint has a permutation of the table's
 * slots, (offset + j x skip) mod M from two hashes of its id; endpoints take turns claiming
 * their next free slot until the table is full, taking turns in proportion to weight. A pick
 * is one table read, O(1); load is even to within a slot, and an endpoint leaving moves
 * little more than its own share of keys.
 */
export function createMaglevPicker(options: MaglevOptions = {}): Picker {
  const size = options.tableSize ?? 65_537;
  if (!isPrime(size)) throw new Error(`maglev: tableSize must be a prime, got ${size}`);
  const random = options.random ?? Math.random;
  let endpoints: Endpoint[] = [];
  let table: Int32Array = new Int32Array(0);
  return {
    kind: "maglev",
    hashing: true,
    update(all, ignoreHealth) {
      const list = eligibleEndpoints("maglev", all, ignoreHealth);
      if (list.length > size)
        throw new Error(
          `maglev: tableSize ${size} cannot give each of the ${list.length} endpoints an entry; use a prime of at least 100 x endpoints (default 65537)`,
        );
      table = buildTable(list, size);
      endpoints = list;
    },
    pick(hash) {
      if (endpoints.length === 0) return undefined;
      const h = hash ?? (random() * 4294967296) >>> 0;
      return endpoints[table[h % size]!];
    },
    callStarted: countStart,
    callEnded: countEnd,
  };
}

function buildTable(endpoints: Endpoint[], size: number): Int32Array {
  const table = new Int32Array(endpoints.length === 0 ? 0 : size).fill(-1);
  if (endpoints.length === 0) return table;
  const n = endpoints.length;
  const cursor = new Float64Array(n); // current slot of each endpoint's permutation
  const skip = new Float64Array(n);
  const credit = new Float64Array(n);
  let maxWeight = 0;
  for (const e of endpoints) maxWeight = Math.max(maxWeight, e.weight);
  // Credit is counted in units of weight (integers, so exact): a turn adds the endpoint's weight
  // and a slot costs the heaviest weight. Everyone starts one turn short of a slot, so the first
  // round gives every endpoint a slot however light (Envoy: target weights start at 0).
  // Starting at 0, an endpoint of 1/1023 of the heaviest's weight waited 1023 rounds while the
  // heavy ones filled the table, and owned nothing. Equal weights build the same table as before.
  for (let i = 0; i < n; i++) credit[i] = maxWeight - endpoints[i]!.weight;
  for (let i = 0; i < n; i++) {
    const id = endpoints[i]!.id;
    cursor[i] = hashString(id, 0x4d41474c) % size; // "MAGL"
    skip[i] = (hashString(id, 0x45562121) % (size - 1)) + 1; // "EV!!"
  }
  let filled = 0;
  while (filled < size) {
    for (let i = 0; i < n && filled < size; i++) {
      credit[i]! += endpoints[i]!.weight;
      while (credit[i]! >= maxWeight && filled < size) {
        credit[i]! -= maxWeight;
        let slot = cursor[i]!;
        while (table[slot]! >= 0) slot = (slot + skip[i]!) % size;
        table[slot] = i;
        cursor[i] = (slot + skip[i]!) % size;
        filled++;
      }
    }
  }
  return table;
}
