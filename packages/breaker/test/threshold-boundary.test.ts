// A rate exactly at the threshold trips, for every window size 1..100 and every hit count:
// the threshold is the decimal a user would write for k/n (4 places, e.g. 0.56 for 14/25), and
// the expected decision is made with integer arithmetic, k * 10^4 >= n * (threshold * 10^4).
import { describe, expect, it } from "vitest";
import {
  CircuitBreaker,
  countWindow,
  failureRate,
  slowCallRate,
  timeWindow,
} from "../src/index.ts";
import { failWith, ok, run } from "./helpers.ts";

const PLACES = 4;
const SCALE = 10 ** PLACES;

/** Every (size, hits, threshold) with threshold the 4-place decimal of hits/size. */
function* cases(): Generator<{ size: number; hits: number; threshold: number; units: number }> {
  for (let size = 1; size <= 100; size++)
    for (let hits = 1; hits <= size; hits++) {
      const text = (hits / size).toFixed(PLACES);
      const units = Number(text.replace(".", "")); // the threshold in 1/10^4, exactly
      yield { size, hits, threshold: Number(text), units };
    }
}

/** Feeds `size - hits` misses then `hits` hits; true if the policy asks to open on the last call. */
function tripsAtEnd(
  policy: { record(failed: boolean, durationMs: number, now: number): boolean },
  size: number,
  hits: number,
  slow: boolean,
): boolean {
  let tripped = false;
  for (let i = 0; i < size; i++) {
    const hit = i >= size - hits;
    tripped = slow ? policy.record(false, hit ? 1000 : 1, 0) : policy.record(hit, 0, 0);
  }
  return tripped;
}

describe("rate thresholds at the boundary", () => {
  it("a failure rate of exactly the threshold trips for every window size 1..100 and failure count", () => {
    const wrong: string[] = [];
    for (const { size, hits, threshold, units } of cases()) {
      const expected = hits * SCALE >= size * units;
      const policy = failureRate({ threshold, minimumCalls: size, window: countWindow(size) })();
      if (tripsAtEnd(policy, size, hits, false) !== expected)
        wrong.push(`${hits}/${size} at ${threshold}`);
    }
    expect(wrong).toEqual([]);
  });

  it("a slow-call rate of exactly the threshold trips for every window size 1..100 and slow count", () => {
    const wrong: string[] = [];
    for (const { size, hits, threshold, units } of cases()) {
      const expected = hits * SCALE >= size * units;
      const policy = slowCallRate({
        slowerThanMs: 500,
        threshold,
        minimumCalls: size,
        window: timeWindow(60_000),
      })();
      if (tripsAtEnd(policy, size, hits, true) !== expected)
        wrong.push(`${hits}/${size} at ${threshold}`);
    }
    expect(wrong).toEqual([]);
  });

  it("opens a breaker on 14 failures of 25 at a threshold of 0.56", async () => {
    const breaker = new CircuitBreaker({
      trip: failureRate({ threshold: 0.56, minimumCalls: 25, window: countWindow(25) }),
    });
    await run(breaker, 11, ok);
    await run(breaker, 13, failWith());
    expect(breaker.state).toBe("closed");
    await run(breaker, 1, failWith());
    expect(breaker.state).toBe("open");
    expect(breaker.health().reason).toContain("failure rate 56.0% (14/25)");
  });
});
