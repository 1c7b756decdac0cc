import { seededRandom } from "@quartet/determinism";
import { describe, expect, it } from "vitest";
import type { Endpoint } from "../src/endpoint.ts";
import { createPicker, pickerKinds } from "../src/pickers/index.ts";
import { createLeastConnectionsPicker } from "../src/pickers/least-connections.ts";
import { createLeastRequestPicker } from "../src/pickers/least-request.ts";
import { createRoundRobinPicker } from "../src/pickers/round-robin.ts";
import { createWeightedRoundRobinPicker } from "../src/pickers/weighted-round-robin.ts";
import { endpoints, tally } from "./helpers.ts";

describe("every picker", () => {
  it.each(pickerKinds)(
    "%s skips unhealthy endpoints, and picks none when none is healthy",
    (kind) => {
      const eps = endpoints(4);
      const picker = createPicker(kind, { random: seededRandom(1) });
      eps[1]!.healthy = false;
      eps[3]!.healthy = false;
      picker.update(eps);
      const picked = new Set<string>();
      for (let i = 0; i < 400; i++) picked.add(picker.pick(Math.imul(i, 2654435761) >>> 0)!.id);
      expect([...picked].sort()).toEqual(["e0", "e2"]);
      for (const e of eps) e.healthy = false;
      picker.update(eps);
      expect(picker.pick(123)).toBeUndefined();
      // Panic mode: health ignored, every endpoint can be chosen again.
      picker.update(eps, true);
      const all = new Set<string>();
      for (let i = 0; i < 4000; i++) all.add(picker.pick(Math.imul(i, 2654435761) >>> 0)!.id);
      expect(all.size).toBe(4);
    },
  );

  it.each(pickerKinds)("%s counts calls in flight on the endpoint", (kind) => {
    const eps = endpoints(3);
    const picker = createPicker(kind, { random: seededRandom(2) });
    picker.update(eps);
    const e = picker.pick(42)!;
    picker.callStarted(e);
    picker.callStarted(e);
    expect(e.inFlight).toBe(2);
    picker.callEnded(e);
    picker.callEnded(e);
    picker.callEnded(e); // never below zero
    expect(e.inFlight).toBe(0);
  });
});

describe("round robin", () => {
  it("gives equal shares to calls that overlap in time", () => {
    const eps = endpoints(3);
    const picker = createRoundRobinPicker();
    picker.update(eps);
    // 300 calls start before any finishes, as concurrent callers would.
    const picks = Array.from({ length: 300 }, () => {
      const e = picker.pick()!;
      picker.callStarted(e);
      return e;
    });
    expect(tally(picks)).toEqual({ e0: 100, e1: 100, e2: 100 });
  });

  it("rotates in order and keeps its place when the set changes", () => {
    const eps = endpoints(3);
    const picker = createRoundRobinPicker({ random: () => 0 }); // start at e0
    picker.update(eps);
    expect([picker.pick(), picker.pick()].map((e) => e!.id)).toEqual(["e0", "e1"]);
    eps[0]!.healthy = false;
    picker.update(eps);
    // e2 was due next and still is.
    expect([picker.pick(), picker.pick(), picker.pick()].map((e) => e!.id)).toEqual([
      "e2",
      "e1",
      "e2",
    ]);
    eps[0]!.healthy = true;
    picker.update(eps);
    expect([picker.pick(), picker.pick(), picker.pick()].map((e) => e!.id)).toEqual([
      "e1",
      "e2",
      "e0",
    ]);
  });
});

describe("smooth weighted round robin", () => {
  it("interleaves picks like nginx: weights 5,1,1 give a a b a c a a", () => {
    const eps = endpoints(3, [5, 1, 1]);
    const picker = createWeightedRoundRobinPicker();
    picker.update(eps);
    const ids = Array.from({ length: 14 }, () => picker.pick()!.id);
    expect(ids.join(" ")).toBe("e0 e0 e1 e0 e2 e0 e0 e0 e0 e1 e0 e2 e0 e0");
  });

  it("honours weights exactly over every full window", () => {
    const eps = endpoints(3, [3, 2, 1]);
    const picker = createWeightedRoundRobinPicker();
    picker.update(eps);
    for (let window = 0; window < 50; window++) {
      const picks = Array.from({ length: 6 }, () => picker.pick());
      expect(tally(picks)).toEqual({ e0: 3, e1: 2, e2: 1 });
    }
  });

  it("reduces weights by their gcd and redistributes when one is unhealthy", () => {
    const eps = endpoints(3, [200, 100, 100]);
    const picker = createWeightedRoundRobinPicker();
    picker.update(eps);
    expect(tally(Array.from({ length: 4 }, () => picker.pick()))).toEqual({ e0: 2, e1: 1, e2: 1 });
    eps[0]!.healthy = false;
    picker.update(eps);
    expect(tally(Array.from({ length: 100 }, () => picker.pick()))).toEqual({ e1: 50, e2: 50 });
  });

  it("scales schedules longer than maxCycle down, keeping every endpoint", () => {
    const eps = endpoints(2, [1000, 1]);
    const picker = createWeightedRoundRobinPicker({ maxCycle: 100 });
    picker.update(eps);
    const counts = tally(Array.from({ length: 100 }, () => picker.pick()));
    expect(counts.e1).toBeGreaterThanOrEqual(1);
    expect(counts.e0).toBeGreaterThanOrEqual(98);
  });
});

describe("least connections", () => {
  it("picks the endpoint with the fewest calls in flight", () => {
    const eps = endpoints(3);
    const picker = createLeastConnectionsPicker();
    picker.update(eps);
    const busy = (e: Endpoint, n: number) => {
      for (let i = 0; i < n; i++) picker.callStarted(e);
    };
    busy(eps[0]!, 3);
    busy(eps[1]!, 1);
    busy(eps[2]!, 2);
    expect(picker.pick()!.id).toBe("e1");
    picker.callEnded(eps[0]!);
    picker.callEnded(eps[0]!);
    picker.callEnded(eps[0]!);
    expect(picker.pick()!.id).toBe("e0");
  });

  it("spreads concurrent calls evenly and lets idle endpoints take turns", () => {
    const eps = endpoints(3);
    const picker = createLeastConnectionsPicker();
    picker.update(eps);
    const picks = Array.from({ length: 30 }, () => {
      const e = picker.pick()!;
      picker.callStarted(e);
      return e;
    });
    expect(tally(picks)).toEqual({ e0: 10, e1: 10, e2: 10 });
    for (const e of picks) picker.callEnded(e);
    // Sequential calls (each ends before the next) rotate instead of hitting one endpoint.
    const sequential = Array.from({ length: 9 }, () => {
      const e = picker.pick()!;
      picker.callStarted(e);
      picker.callEnded(e);
      return e;
    });
    expect(tally(sequential)).toEqual({ e0: 3, e1: 3, e2: 3 });
  });

  it("keeps counts of calls on an endpoint that left and came back", () => {
    const eps = endpoints(2);
    const picker = createLeastConnectionsPicker();
    picker.update(eps);
    picker.callStarted(eps[0]!);
    picker.update([eps[1]!]);
    picker.callEnded(eps[0]!); // finishes while removed
    picker.callStarted(eps[1]!);
    picker.update(eps);
    expect(eps[0]!.inFlight).toBe(0);
    expect(picker.pick()!.id).toBe("e0");
  });
});

describe("least request (power of two choices)", () => {
  it("never picks the busiest endpoint and picks the idlest whenever it is sampled", () => {
    const eps = endpoints(3);
    eps[0]!.inFlight = 0;
    eps[1]!.inFlight = 5;
    eps[2]!.inFlight = 10;
    const picker = createLeastRequestPicker({ random: seededRandom(7) });
    picker.update(eps);
    const counts = tally(Array.from({ length: 3000 }, () => picker.pick()));
    expect(counts.e2).toBeUndefined();
    // e0 is in 2 of the 3 possible pairs, and wins each of them.
    expect(counts.e0! / 3000).toBeGreaterThan(0.62);
    expect(counts.e0! / 3000).toBeLessThan(0.71);
  });

  it("replays the same choices from the same seed", () => {
    const run = (seed: number) => {
      const eps = endpoints(8);
      const picker = createLeastRequestPicker({ random: seededRandom(seed) });
      picker.update(eps);
      return Array.from({ length: 50 }, () => picker.pick()!.id).join(",");
    };
    expect(run(11)).toBe(run(11));
    expect(run(11)).not.toBe(run(12));
  });

  it("balances a closed loop of concurrent calls", () => {
    const eps = endpoints(4);
    const picker = createLeastRequestPicker({ random: seededRandom(3) });
    picker.update(eps);
    const open: Endpoint[] = [];
    for (let i = 0; i < 400; i++) {
      const e = picker.pick()!;
      picker.callStarted(e);
      open.push(e);
    }
    const loads = eps.map((e) => e.inFlight);
    expect(Math.max(...loads) - Math.min(...loads)).toBeLessThanOrEqual(2);
  });
});
