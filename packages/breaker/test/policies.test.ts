// The extra trip policies (failure rate, slow-call rate over count and time windows) and the
// open-state backoff, on a fake clock.
import { Code } from "@connectrpc/connect";
import { FakeClock } from "@quartet/determinism/testing";
import { describe, expect, it } from "vitest";
import {
  CircuitBreaker,
  countWindow,
  failureRate,
  seededRandom,
  slowCallRate,
  timeWindow,
} from "../src/index.ts";
import { createWindow } from "../src/window.ts";
import { failWith, ok, run } from "./helpers.ts";

describe("failure rate over a count window", () => {
  const make = () =>
    new CircuitBreaker({
      clock: new FakeClock(),
      trip: failureRate({ threshold: 0.5, minimumCalls: 4, window: countWindow(6) }),
    });

  it("decides nothing before the minimum number of calls, however bad they are", async () => {
    const breaker = make();
    await run(breaker, 3, failWith());
    expect(breaker.state).toBe("closed");
    await run(breaker, 1, failWith());
    expect(breaker.state).toBe("open");
  });

  it("trips when the rate reaches the threshold, not below it", async () => {
    const breaker = make();
    await run(breaker, 4, ok);
    await run(breaker, 2, failWith()); // 2/6 = 33%
    expect(breaker.state).toBe("closed");
    await run(breaker, 1, failWith()); // oldest success slides out: 3/6 = 50%
    expect(breaker.state).toBe("open");
    expect(breaker.health().reason).toContain(
      "failure rate 50.0% (3/6) over the last 6 calls reached the threshold of 50.0%",
    );
  });

  it("forgets outcomes that slid out of the window", async () => {
    const breaker = make();
    await run(breaker, 4, ok);
    await run(breaker, 2, failWith()); // 2/6
    await run(breaker, 6, ok); // both failures slid out: 0/6
    await run(breaker, 2, failWith()); // 2/6 again, not 4/6
    expect(breaker.state).toBe("closed");
    await run(breaker, 1, failWith()); // 3/6
    expect(breaker.state).toBe("open");
  });

  it("starts a fresh window after closing again", async () => {
    const clock = new FakeClock();
    const breaker = new CircuitBreaker({
      clock,
      resetTimeoutMs: 100,
      trip: failureRate({ threshold: 0.5, minimumCalls: 4, window: countWindow(10) }),
    });
    await run(breaker, 4, failWith());
    clock.advance(100);
    await run(breaker, 1, ok);
    expect(breaker.state).toBe("closed");
    await run(breaker, 3, failWith()); // the 4 old failures are gone: below minimum calls
    expect(breaker.state).toBe("closed");
  });

  it("caps the minimum calls at the window size", async () => {
    const breaker = new CircuitBreaker({
      clock: new FakeClock(),
      trip: failureRate({ threshold: 1, minimumCalls: 100, window: countWindow(3) }),
    });
    await run(breaker, 3, failWith());
    expect(breaker.state).toBe("open");
  });
});

describe("failure rate over a time window", () => {
  // 10 s in 10 buckets of 1 s; one success, one success, one failure at t = 0.
  const prefix = async () => {
    const clock = new FakeClock(0);
    const breaker = new CircuitBreaker({
      clock,
      trip: failureRate({ threshold: 0.5, minimumCalls: 4, window: timeWindow(10_000, 10) }),
    });
    await run(breaker, 2, ok);
    await run(breaker, 1, failWith()); // 1/3, below the minimum
    return { clock, breaker };
  };

  it("keeps calls until their bucket slides out", async () => {
    const { clock, breaker } = await prefix();
    clock.advance(9_999); // bucket 9: the t = 0 calls are still in the window
    await run(breaker, 1, failWith()); // 2/4
    expect(breaker.state).toBe("open");
  });

  it("expires a whole bucket at once when time reaches the next one", async () => {
    const { clock, breaker } = await prefix();
    clock.advance(10_000); // bucket 10 replaces bucket 0
    await run(breaker, 3, failWith()); // 3/3: the old calls are gone, so below the minimum
    expect(breaker.state).toBe("closed");
    await run(breaker, 1, failWith()); // 4/4
    expect(breaker.state).toBe("open");
  });

  it("starts empty after a gap longer than the window", async () => {
    const clock = new FakeClock(0);
    const breaker = new CircuitBreaker({
      clock,
      trip: failureRate({ threshold: 0.5, minimumCalls: 2, window: timeWindow(1000, 4) }),
    });
    await run(breaker, 9, ok);
    await run(breaker, 1, failWith()); // 1/10
    expect(breaker.state).toBe("closed");
    clock.advance(60_000);
    await run(breaker, 1, ok);
    await run(breaker, 1, failWith()); // 1/2: the 9 old successes no longer dilute it
    expect(breaker.state).toBe("open");
  });
});

describe("time window bookkeeping", () => {
  it("matches a brute-force count of the last window for a seeded random workload", () => {
    const random = seededRandom(42);
    const sizeMs = 1000;
    const buckets = 8;
    const bucketMs = sizeMs / buckets;
    const window = createWindow(timeWindow(sizeMs, buckets));
    const log: { at: number; hit: boolean }[] = [];
    let now = 0;
    for (let i = 0; i < 5000; i++) {
      now += Math.floor(random() * (random() < 0.05 ? 3000 : 60));
      const hit = random() < 0.3;
      window.add(hit, now);
      log.push({ at: now, hit });
      // The window holds the current bucket and the buckets - 1 before it.
      const oldest = (Math.floor(now / bucketMs) - buckets + 1) * bucketMs;
      const inside = log.filter((e) => e.at >= oldest);
      expect(window.total).toBe(inside.length);
      expect(window.hits).toBe(inside.filter((e) => e.hit).length);
    }
  });

  it("matches a brute-force count of the last N calls", () => {
    const random = seededRandom(7);
    const window = createWindow(countWindow(13));
    const log: boolean[] = [];
    for (let i = 0; i < 500; i++) {
      const hit = random() < 0.4;
      window.add(hit, 0);
      log.push(hit);
      const last = log.slice(-13);
      expect([window.total, window.hits]).toEqual([last.length, last.filter(Boolean).length]);
    }
  });
});

describe("slow-call rate", () => {
  /** A call that takes `ms` on the fake clock, then succeeds or fails. */
  const slow =
    (clock: FakeClock, ms: number, fail = false) =>
    async () => {
      clock.advance(ms);
      if (fail) throw new Error("late and failed");
      return "ok";
    };

  it("trips on slow successes, counting calls at the threshold as slow", async () => {
    const clock = new FakeClock();
    const breaker = new CircuitBreaker({
      clock,
      trip: slowCallRate({
        slowerThanMs: 500,
        threshold: 0.5,
        minimumCalls: 4,
        window: countWindow(4),
      }),
    });
    await run(breaker, 2, slow(clock, 499));
    await run(breaker, 1, slow(clock, 500));
    expect(breaker.state).toBe("closed");
    await run(breaker, 1, slow(clock, 2000)); // 2/4 slow
    expect(breaker.state).toBe("open");
    expect(breaker.metrics()).toMatchObject({ successes: 4, failures: 0 });
    expect(breaker.health().reason).toContain("slow rate 50.0% (2/4)");
  });

  it("combines with a failure-rate policy: whichever reaches its threshold first trips", async () => {
    const clock = new FakeClock();
    const breaker = new CircuitBreaker({
      clock,
      trip: [
        failureRate({ threshold: 0.5, minimumCalls: 4, window: countWindow(4) }),
        slowCallRate({ slowerThanMs: 100, threshold: 1, minimumCalls: 4, window: countWindow(4) }),
      ],
    });
    await run(breaker, 1, slow(clock, 150, true));
    await run(breaker, 3, slow(clock, 150));
    expect(breaker.state).toBe("open");
    expect(breaker.health().reason).toContain("slow rate 100.0% (4/4)");
  });

  it("validates its options", () => {
    expect(() =>
      slowCallRate({ slowerThanMs: 0, threshold: 0.5, window: countWindow(10) }),
    ).toThrow("slowCallRate slowerThanMs must be > 0, got 0");
    expect(() => failureRate({ threshold: 50, window: countWindow(10) })).toThrow(
      "failureRate threshold is a fraction in (0, 1], e.g. 0.5 for 50%; got 50",
    );
    expect(() => failureRate({ threshold: 0.5, window: timeWindow(5, 10) })).toThrow(
      /sizeMs must be >= its bucket count/,
    );
  });
});

describe("backoff with jitter", () => {
  const openPeriods = async (seed: number, jitter: number) => {
    const clock = new FakeClock();
    const breaker = new CircuitBreaker({
      clock,
      random: seededRandom(seed),
      trip: failureRate({ threshold: 1, minimumCalls: 1, window: countWindow(1) }),
      resetTimeoutMs: 1000,
      backoff: { multiplier: 2, maxMs: 30_000, jitter },
    });
    const waits: number[] = [];
    await run(breaker, 1, failWith(Code.Unavailable));
    for (let i = 0; i < 12; i++) {
      const next = breaker.metrics().nextProbeAt!;
      waits.push(next - clock.now());
      clock.set(next);
      await run(breaker, 1, failWith(Code.Unavailable));
    }
    waits.push(breaker.metrics().nextProbeAt! - clock.now());
    clock.set(breaker.metrics().nextProbeAt!);
    await run(breaker, 1, ok);
    expect(breaker.state).toBe("closed");
    await run(breaker, 1, failWith(Code.Unavailable));
    const afterClose = breaker.metrics().nextProbeAt! - clock.now();
    return { waits, afterClose };
  };

  it("stays within [d * (1 - jitter), d] of the exponential schedule, never above the maximum", async () => {
    const { waits, afterClose } = await openPeriods(1, 0.5);
    waits.forEach((wait, attempt) => {
      const d = Math.min(30_000, 1000 * 2 ** attempt);
      expect(wait).toBeGreaterThanOrEqual(d * 0.5);
      expect(wait).toBeLessThanOrEqual(d);
    });
    // Jitter actually varies the waits (not all at the top of the range).
    expect(new Set(waits.slice(6)).size).toBeGreaterThan(1);
    expect(afterClose).toBeGreaterThanOrEqual(500);
    expect(afterClose).toBeLessThanOrEqual(1000);
  });

  it("is reproducible from the seed and differs between seeds", async () => {
    const a = await openPeriods(99, 0.3);
    const b = await openPeriods(99, 0.3);
    const c = await openPeriods(100, 0.3);
    expect(a).toEqual(b);
    expect(a.waits).not.toEqual(c.waits);
  });
});
