// Where the pickers were checked against their peers' own tests (Envoy's ring hash, Maglev and
// least-request tests, gRPC's round robin): ring normalisation and bounds, Maglev starvation,
// weight validation, weighted least request, round robin's random start.
import { seededRandom } from "@quartet/determinism";
import { describe, expect, it } from "vitest";
import { createEndpoint, type Endpoint, setEndpointWeight } from "../src/endpoint.ts";
import { hashKey } from "../src/hash.ts";
import { createBoundedLoadPicker } from "../src/pickers/bounded-load.ts";
import { createPicker, pickerKinds } from "../src/pickers/index.ts";
import { createLeastRequestPicker } from "../src/pickers/least-request.ts";
import { createMaglevPicker } from "../src/pickers/maglev.ts";
import { buildRing, DEFAULT_MAX_RING_SIZE, ringSettings } from "../src/pickers/ring.ts";
import { createRingHashPicker } from "../src/pickers/ring-hash.ts";
import { createRoundRobinPicker } from "../src/pickers/round-robin.ts";
import { endpoints, tally } from "./helpers.ts";

const keys = Array.from({ length: 20_000 }, (_, i) => hashKey(`user-${i}`));

describe("ring hash and bounded loads: normalised, bounded rings", () => {
  it("build the same small ring for ten endpoints of weight 5,000 as for weight 1", () => {
    const heavy = endpoints(10, Array(10).fill(5000));
    const ring = buildRing(heavy, ringSettings("ring_hash", {}));
    expect(ring.positions.length).toBeLessThanOrEqual(DEFAULT_MAX_RING_SIZE);
    expect(ring.positions.length).toBe(1600); // 160 per endpoint, as with weight 1
    for (const create of [createRingHashPicker, createBoundedLoadPicker]) {
      const light = create();
      light.update(endpoints(10));
      const picker = create();
      picker.update(heavy);
      expect(keys.map((h) => picker.pick(h)!.id)).toEqual(keys.map((h) => light.pick(h)!.id));
    }
  });

  it("scale each endpoint's nodes by its normalised weight, within maxRingSize", () => {
    const settings = ringSettings("ring_hash", { maxRingSize: 10_000 });
    const ring = buildRing(endpoints(3, [1, 1_000_000, 3]), settings);
    expect(ring.positions.length).toBeLessThanOrEqual(10_000);
    const owned = [0, 0, 0];
    for (const owner of ring.owners) owned[owner]!++;
    expect(owned[0]).toBeGreaterThanOrEqual(1); // the lightest still owns a node
    expect(owned[1]! / ring.positions.length).toBeGreaterThan(0.99);
  });

  it("fill at least minRingSize entries (Envoy's default 1,024) when there are few endpoints", () => {
    const ring = buildRing(endpoints(2), ringSettings("ring_hash", {}));
    expect(ring.positions.length).toBe(1024);
    const picker = createRingHashPicker();
    picker.update(endpoints(2));
    const counts = tally(keys.map((h) => picker.pick(h)));
    expect(Math.max(counts.e0!, counts.e1!) / (keys.length / 2)).toBeLessThan(1.1);
  });

  it("refuse replicas: 0 and ring bounds that cannot work, saying what is allowed", () => {
    expect(() => createRingHashPicker({ replicas: 0 })).toThrow(
      "ring_hash: replicas must be an integer >= 1 (virtual nodes of the lightest endpoint; default 160), got 0",
    );
    expect(() => createBoundedLoadPicker({ replicas: 1.5 })).toThrow(
      "bounded_load: replicas must be an integer >= 1",
    );
    expect(() => createRingHashPicker({ minRingSize: 2048, maxRingSize: 1024 })).toThrow(
      "ring_hash: maxRingSize (1024) must be >= minRingSize (2048)",
    );
    expect(() => createRingHashPicker({ maxRingSize: 2 ** 30 })).toThrow(
      "ring_hash: maxRingSize must be an integer in [1, 67108864], got 1073741824",
    );
  });
});

describe("maglev", () => {
  /** Table entries each endpoint owns: every slot is `hash % size` for one hash in [0, size). */
  function entries(eps: Endpoint[], tableSize: number): Map<string, number> {
    const picker = createMaglevPicker({ tableSize });
    picker.update(eps);
    const counts = new Map<string, number>();
    for (let h = 0; h < tableSize; h++) {
      const id = picker.pick(h)!.id;
      counts.set(id, (counts.get(id) ?? 0) + 1);
    }
    return counts;
  }

  it("gives every healthy endpoint at least one entry: 127 of weight 1,023 against 3 of weight 1", () => {
    const eps = endpoints(130, [...Array(127).fill(1023), 1, 1, 1]);
    const counts = entries(eps, 65_537);
    for (const light of ["e127", "e128", "e129"])
      expect(counts.get(light)).toBeGreaterThanOrEqual(1);
    expect(counts.size).toBe(130);
  });

  it("refuses a table smaller than the endpoint count", () => {
    const picker = createMaglevPicker({ tableSize: 7 });
    expect(() => picker.update(endpoints(8))).toThrow(
      "maglev: tableSize 7 cannot give each of the 8 endpoints an entry; use a prime of at least 100 x endpoints (default 65537)",
    );
  });
});

describe("weights", () => {
  const withWeight = (weight: number): Endpoint[] => endpoints(3).map((e) => ({ ...e, weight })); // built by hand, as a custom resolver might

  it.each(pickerKinds)(
    "%s refuses zero, negative, fractional and NaN weights with a clear error",
    (kind) => {
      for (const weight of [0, -1, 1.5, Number.NaN]) {
        const picker = createPicker(kind, { random: seededRandom(1) });
        expect(() => picker.update(withWeight(weight))).toThrow(
          `${kind}: endpoint e0 has weight ${weight}; weights must be integers >= 1`,
        );
      }
    },
  );

  it("are set only through setEndpointWeight, which validates them", () => {
    const e = createEndpoint({ address: "http://127.0.0.1:7001", weight: 2 });
    setEndpointWeight(e, 5);
    expect(e.weight).toBe(5);
    expect(() => setEndpointWeight(e, 0)).toThrow(
      "endpoint http://127.0.0.1:7001: weight must be an integer >= 1, got 0",
    );
    expect(e.weight).toBe(5);
  });
});

describe("least request with weights", () => {
  // p = 2/3; five standard deviations of a share over n picks.
  const tolerance = (n: number) => 5 * Math.sqrt(((2 / 3) * (1 / 3)) / n);

  it("splits sequential calls 1:2 between weights 1 and 2", () => {
    const eps = endpoints(2, [1, 2]);
    const picker = createLeastRequestPicker({ random: seededRandom(7) });
    picker.update(eps);
    const n = 30_000;
    const counts = tally(Array.from({ length: n }, () => picker.pick()));
    expect(Math.abs(counts.e1! / n - 2 / 3)).toBeLessThan(tolerance(n));
  });

  it("keeps calls in flight 1:2, comparing in-flight calls per unit of weight", () => {
    const eps = endpoints(4, [1, 2, 1, 2]);
    const picker = createLeastRequestPicker({ random: seededRandom(8) });
    picker.update(eps);
    const running: Endpoint[] = [];
    const n = 30_000;
    const picks: Endpoint[] = [];
    for (let i = 0; i < n; i++) {
      const e = picker.pick()!;
      picker.callStarted(e);
      picks.push(e);
      running.push(e);
      if (running.length > 24) picker.callEnded(running.shift()!); // 24 calls in flight
    }
    const counts = tally(picks);
    const heavy = (counts.e1! + counts.e3!) / n;
    expect(Math.abs(heavy - 2 / 3)).toBeLessThan(tolerance(n));
  });

  it("still picks uniformly between equal weights", () => {
    const picker = createLeastRequestPicker({ random: seededRandom(9) });
    picker.update(endpoints(2, [3, 3]));
    const n = 20_000;
    const counts = tally(Array.from({ length: n }, () => picker.pick()));
    expect(Math.abs(counts.e0! / n - 0.5)).toBeLessThan(5 * Math.sqrt(0.25 / n));
  });
});

describe("round robin start", () => {
  it("starts at a random endpoint from the injected random, so clients do not all hit the first", () => {
    const firsts = new Set<string>();
    for (let seed = 1; seed <= 40; seed++) {
      const picker = createRoundRobinPicker({ random: seededRandom(seed) });
      picker.update(endpoints(4));
      const first = picker.pick()!.id;
      firsts.add(first);
      // Then it rotates in order from there.
      const next = Array.from({ length: 4 }, () => picker.pick()!.id);
      expect(next[3]).toBe(first);
    }
    expect(firsts.size).toBe(4);
  });

  it("is reproducible with the same seed, also through createPicker", () => {
    const run = () => {
      const picker = createPicker("round_robin", { random: seededRandom(3) });
      picker.update(endpoints(5));
      return Array.from({ length: 7 }, () => picker.pick()!.id);
    };
    expect(run()).toEqual(run());
  });
});
