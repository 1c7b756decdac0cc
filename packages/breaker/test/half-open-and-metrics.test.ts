// What resilience4j and opossum users look for, on a fake clock: slow half-open probes reopen
// the breaker, the window's rates in the metrics, an event when a rate threshold is exceeded,
// and a maximum wait in half-open.
import { FakeClock } from "@quartet/determinism/testing";
import { describe, expect, it } from "vitest";
import {
  type BreakerOptions,
  CircuitBreaker,
  countWindow,
  failureRate,
  type RateExceededEvent,
  type StateChangeEvent,
  slowCallRate,
  timeWindow,
} from "../src/index.ts";
import { deferred, failWith, ok, run } from "./helpers.ts";

const T0 = Date.UTC(2025, 0, 1);

/** A call that takes `ms` on the fake clock, then succeeds. */
const takes = (clock: FakeClock, ms: number) => async () => {
  clock.advance(ms);
  return "ok";
};

function setup(options: BreakerOptions = {}) {
  const clock = new FakeClock(T0);
  const breaker = new CircuitBreaker({
    name: "svc",
    clock,
    trip: slowCallRate({
      slowerThanMs: 500,
      threshold: 0.5,
      minimumCalls: 2,
      window: countWindow(2),
    }),
    resetTimeoutMs: 1000,
    ...options,
  });
  const transitions: StateChangeEvent[] = [];
  const exceeded: RateExceededEvent[] = [];
  breaker.on("stateChange", (e) => transitions.push(e));
  breaker.on("rateExceeded", (e) => exceeded.push(e));
  return { clock, breaker, transitions, exceeded };
}

describe("half-open probes that are slow", () => {
  it("reopen the breaker although they succeed, so it does not flap on a slow dependency", async () => {
    const { clock, breaker, transitions } = setup();
    await run(breaker, 2, takes(clock, 800));
    expect(breaker.state).toBe("open");
    clock.advance(1000);
    await expect(breaker.execute(takes(clock, 900))).resolves.toBe("ok"); // the caller still gets it
    expect(breaker.state).toBe("open");
    expect(transitions.at(-1)).toMatchObject({
      from: "half-open",
      to: "open",
      reason: "slow rate 100.0% (1/1) over the half-open probes reached the threshold of 50.0%",
    });
    clock.advance(1000);
    await run(breaker, 1, takes(clock, 100));
    expect(breaker.state).toBe("closed");
  });

  it("are judged together: the breaker reopens when their slow share reaches the threshold", async () => {
    const options = { halfOpen: { maxProbes: 4, successesToClose: 4 } };
    const { clock, breaker } = setup(options);
    await run(breaker, 2, takes(clock, 800));
    clock.advance(1000);
    for (const ms of [100, 600, 100, 100]) await run(breaker, 1, takes(clock, ms));
    expect(breaker.state).toBe("closed"); // 1 slow of 4 < 50%

    await run(breaker, 2, takes(clock, 800));
    clock.advance(1000);
    for (const ms of [100, 600, 100, 600]) await run(breaker, 1, takes(clock, ms));
    expect(breaker.state).toBe("open"); // 2 slow of 4 = 50%
  });
});

describe("metrics of the trip window", () => {
  it("report the window's failure rate, slow-call rate and buffered calls", async () => {
    const clock = new FakeClock(T0);
    const breaker = new CircuitBreaker({
      clock,
      trip: [
        failureRate({ threshold: 0.9, minimumCalls: 10, window: countWindow(10) }),
        slowCallRate({ slowerThanMs: 100, threshold: 0.9, window: timeWindow(10_000) }),
      ],
    });
    expect(breaker.metrics()).toMatchObject({ failureRate: 0, slowCallRate: 0, bufferedCalls: 0 });
    await run(breaker, 1, failWith());
    await run(breaker, 2, takes(clock, 200));
    await run(breaker, 1, ok);
    expect(breaker.metrics()).toMatchObject({
      failureRate: 0.25,
      slowCallRate: 0.5,
      bufferedCalls: 4,
    });
    clock.advance(20_000); // the time window empties; the count window keeps its calls
    expect(breaker.metrics()).toMatchObject({ failureRate: 0.25, slowCallRate: 0 });
  });

  it("are null when no policy of that kind is configured", () => {
    const breaker = new CircuitBreaker({ clock: new FakeClock(T0) });
    expect(breaker.metrics()).toMatchObject({
      failureRate: null,
      slowCallRate: null,
      bufferedCalls: 0,
    });
  });
});

describe("the rateExceeded event", () => {
  it("tells which rate crossed its threshold, in closed and in half-open", async () => {
    const clock = new FakeClock(T0);
    const breaker = new CircuitBreaker({
      name: "svc",
      clock,
      resetTimeoutMs: 1000,
      trip: [
        failureRate({ threshold: 0.5, minimumCalls: 4, window: countWindow(4) }),
        slowCallRate({ slowerThanMs: 500, threshold: 1, minimumCalls: 4, window: countWindow(4) }),
      ],
    });
    const seen: RateExceededEvent[] = [];
    breaker.on("rateExceeded", (e) => seen.push(e));
    await run(breaker, 2, ok);
    await run(breaker, 2, failWith());
    expect(seen).toEqual([
      {
        breaker: "svc",
        state: "closed",
        kind: "failure",
        rate: 0.5,
        hits: 2,
        calls: 4,
        threshold: 0.5,
        over: "last 4 calls",
        at: T0,
      },
    ]);
    clock.advance(1000);
    await run(breaker, 1, takes(clock, 700));
    expect(seen[1]).toMatchObject({ state: "half-open", kind: "slow", hits: 1, calls: 1 });
    expect(breaker.state).toBe("open");
  });
});

describe("maximum wait in half-open", () => {
  it("goes back to open when the probes have not decided in time", async () => {
    const { clock, breaker, transitions } = setup({
      trip: failureRate({ threshold: 1, minimumCalls: 1, window: countWindow(1) }),
      halfOpen: { maxWaitMs: 3000 },
    });
    await run(breaker, 1, failWith());
    clock.advance(1000);
    const stuck = deferred<string>();
    const probe = breaker.execute(() => stuck.promise);
    expect(breaker.state).toBe("half-open");
    clock.advance(2999);
    expect(breaker.state).toBe("half-open");
    clock.advance(1);
    expect(breaker.state).toBe("open");
    expect(transitions.at(-1)).toMatchObject({
      from: "half-open",
      to: "open",
      at: T0 + 4000,
      nextProbeAt: T0 + 5000,
      reason: "no decision within 3000 ms in half-open (0/1 probe successes, 1 probe in flight)",
    });
    // The late probe's success is counted but cannot close the reopened breaker.
    stuck.resolve("ok");
    await probe;
    expect(breaker.state).toBe("open");
    expect(breaker.metrics().successes).toBe(1);
  });

  it("dates the reopening from the deadline when nobody looked at the breaker meanwhile", async () => {
    const { clock, breaker, transitions } = setup({
      trip: failureRate({ threshold: 1, minimumCalls: 1, window: countWindow(1) }),
      halfOpen: { maxWaitMs: 3000 },
    });
    await run(breaker, 1, failWith());
    clock.advance(1000);
    void breaker.execute(() => new Promise<string>(() => {}));
    clock.advance(10_000); // past the deadline (T0 + 4000) and the open period after it
    await expect(breaker.execute(ok)).resolves.toBe("ok");
    expect(transitions.map((t) => [t.to, t.at - T0])).toEqual([
      ["open", 0],
      ["half-open", 1000],
      ["open", 4000],
      ["half-open", 11_000],
      ["closed", 11_000],
    ]);
  });

  it("waits for the probes indefinitely by default, and refuses a negative wait", () => {
    expect(() => setup({ halfOpen: { maxWaitMs: -1 } })).toThrow(
      "halfOpen.maxWaitMs must be a number of ms >= 0 (0: wait for the probes indefinitely), got -1",
    );
  });
});
