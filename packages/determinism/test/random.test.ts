import { describe, expect, it } from "vitest";
import { randomInt, seededRandom } from "../src/index.ts";

const take = (seed: number, n: number) => Array.from({ length: n }, seededRandom(seed));

describe("seededRandom", () => {
  it("replays the same sequence for the same seed", () => {
    expect(take(42, 1000)).toEqual(take(42, 1000));
  });

  it("matches the canonical mulberry32 (the form the balancer used) for any seed", () => {
    // Written independently in the reference's style (signed state), so the shared generator
    // is checked against mulberry32 itself, not against a copy of its own code.
    const reference = (seed: number) => {
      let a = seed | 0;
      return () => {
        a = (a + 0x6d2b79f5) | 0;
        let t = Math.imul(a ^ (a >>> 15), 1 | a);
        t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
        return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
      };
    };
    for (const seed of [0, 1, 42, 0x7fffffff, 0x80000000, 2 ** 32 - 1]) {
      expect(take(seed, 200)).toEqual(Array.from({ length: 200 }, reference(seed)));
    }
  });

  it("stays in [0, 1) and spreads evenly", () => {
    const xs = take(7, 100_000);
    expect(xs.every((x) => x >= 0 && x < 1)).toBe(true);
    const buckets = new Array(10).fill(0);
    for (const x of xs) buckets[Math.floor(x * 10)]++;
    for (const b of buckets) expect(Math.abs(b - 10_000)).toBeLessThan(500);
  });

  it("gives different sequences for different seeds", () => {
    expect(take(1, 10)).not.toEqual(take(2, 10));
    expect(take(0, 10)).not.toEqual(take(2 ** 32 - 1, 10));
  });

  it("treats seeds modulo 2^32, so any number is a valid seed", () => {
    expect(take(2 ** 32 + 5, 5)).toEqual(take(5, 5));
    expect(take(-1, 5)).toEqual(take(2 ** 32 - 1, 5));
  });
});

describe("randomInt", () => {
  it("draws integers in [0, n) and reaches every value", () => {
    const random = seededRandom(3);
    const seen = new Set<number>();
    for (let i = 0; i < 1000; i++) {
      const k = randomInt(random, 6);
      expect(Number.isInteger(k) && k >= 0 && k < 6).toBe(true);
      seen.add(k);
    }
    expect([...seen].sort()).toEqual([0, 1, 2, 3, 4, 5]);
  });
});
