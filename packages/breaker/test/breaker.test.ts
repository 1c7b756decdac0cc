// The seed's decision flow, branch by branch, on a fake clock:
// closed --N failures--> open --reset timeout--> half-open --M successes--> closed
//                          ^------------- any probe failure ---------------'
import { Code, ConnectError } from "@connectrpc/connect";
import { FakeClock } from "@quartet/determinism/testing";
import { describe, expect, it, vi } from "vitest";
import {
  type BreakerOptions,
  BreakerRejectedError,
  CircuitBreaker,
  consecutiveFailures,
  isBreakerRejection,
  type StateChangeEvent,
} from "../src/index.ts";
import { deferred, failWith, ok, run } from "./helpers.ts";

const T0 = Date.UTC(2025, 0, 1);

function setup(options: BreakerOptions = {}) {
  const clock = new FakeClock(T0);
  const breaker = new CircuitBreaker({
    name: "svc",
    clock,
    trip: consecutiveFailures(3),
    resetTimeoutMs: 1000,
    ...options,
  });
  const transitions: StateChangeEvent[] = [];
  breaker.on("stateChange", (e) => transitions.push(e));
  return { clock, breaker, transitions };
}

/** Trips the breaker with three failures. */
async function trip(breaker: CircuitBreaker) {
  await run(breaker, 3, failWith());
  expect(breaker.state).toBe("open");
}

describe("closed", () => {
  it("passes results through and counts successes", async () => {
    const { breaker } = setup();
    await expect(breaker.execute(ok)).resolves.toBe("ok");
    expect(breaker.state).toBe("closed");
    expect(breaker.metrics()).toMatchObject({ totalCalls: 1, successes: 1, failures: 0 });
  });

  it("stays closed below the failure threshold and passes errors through unchanged", async () => {
    const { breaker, transitions } = setup();
    const error = new ConnectError("down", Code.Unavailable);
    await expect(breaker.execute(() => Promise.reject(error))).rejects.toBe(error);
    await run(breaker, 1, failWith());
    expect(breaker.state).toBe("closed");
    expect(breaker.metrics().failures).toBe(2);
    expect(transitions).toEqual([]);
  });

  it("needs the failures consecutively: a success starts the count again", async () => {
    const { breaker } = setup();
    await run(breaker, 2, failWith());
    await run(breaker, 1, ok);
    await run(breaker, 2, failWith());
    expect(breaker.state).toBe("closed");
    await run(breaker, 1, failWith());
    expect(breaker.state).toBe("open");
  });

  it("counts a synchronous throw from the guarded function as a failure", async () => {
    const { breaker } = setup();
    const boom = () => {
      throw new Error("sync");
    };
    for (let i = 0; i < 3; i++) await expect(breaker.execute(boom)).rejects.toThrow("sync");
    expect(breaker.state).toBe("open");
  });
});

describe("open", () => {
  it("trips at the threshold, announcing why and when it will probe", async () => {
    const { breaker, transitions } = setup();
    await trip(breaker);
    expect(transitions).toEqual([
      {
        breaker: "svc",
        from: "closed",
        to: "open",
        reason: "3 consecutive failures (threshold 3)",
        at: T0,
        nextProbeAt: T0 + 1000,
      },
    ]);
  });

  it("rejects without calling the function, naming the breaker and the next probe time", async () => {
    const { clock, breaker } = setup();
    await trip(breaker);
    clock.advance(250);
    const fn = vi.fn(ok);
    const error = await breaker.execute(fn).catch((e: unknown) => e);
    expect(fn).not.toHaveBeenCalled();
    expect(error).toBeInstanceOf(BreakerRejectedError);
    expect(isBreakerRejection(error)).toBe(true);
    expect(error).toMatchObject({
      breaker: "svc",
      state: "open",
      at: T0 + 250,
      nextProbeAt: T0 + 1000,
      retryAfterMs: 750,
      message: 'circuit breaker "svc" is open; next probe at 2025-01-01T00:00:01.000Z (in 750 ms)',
    });
    expect(breaker.metrics().rejections).toBe(1);
  });

  it("moves to half-open lazily, exactly when the reset timeout has elapsed", async () => {
    const { clock, breaker, transitions } = setup();
    await trip(breaker);
    clock.advance(999);
    expect(breaker.state).toBe("open");
    clock.advance(1);
    expect(breaker.state).toBe("half-open");
    expect(transitions.at(-1)).toMatchObject({
      from: "open",
      to: "half-open",
      reason: "reset timeout elapsed",
      at: T0 + 1000,
      nextProbeAt: null,
    });
  });
});

describe("half-open", () => {
  it("lets a probe through after the timeout and closes after one success by default", async () => {
    const { clock, breaker, transitions } = setup();
    await trip(breaker);
    clock.advance(1000);
    const fn = vi.fn(ok);
    await expect(breaker.execute(fn)).resolves.toBe("ok");
    expect(fn).toHaveBeenCalledOnce();
    expect(breaker.state).toBe("closed");
    expect(transitions.map((t) => t.to)).toEqual(["open", "half-open", "closed"]);
    expect(transitions.at(-1)!.reason).toBe("1 probe success");
  });

  it("stays half-open until M probe successes, then closes", async () => {
    const { clock, breaker } = setup({ halfOpen: { successesToClose: 3, maxProbes: 1 } });
    await trip(breaker);
    clock.advance(1000);
    await run(breaker, 2, ok);
    expect(breaker.state).toBe("half-open");
    expect(breaker.health().reason).toContain("2/3 probe successes");
    await run(breaker, 1, ok);
    expect(breaker.state).toBe("closed");
  });

  it("reopens on any probe failure, for the base timeout when there is no backoff", async () => {
    const { clock, breaker, transitions } = setup({ halfOpen: { successesToClose: 2 } });
    await trip(breaker);
    clock.advance(1000);
    await run(breaker, 1, ok);
    await run(breaker, 1, failWith(Code.DeadlineExceeded));
    expect(breaker.state).toBe("open");
    expect(transitions.at(-1)).toMatchObject({
      from: "half-open",
      to: "open",
      reason: "a failed probe (ConnectError: [deadline_exceeded] down)",
      nextProbeAt: T0 + 2000,
    });
  });

  it("reopens with a growing timeout under backoff, capped at the maximum", async () => {
    const { clock, breaker } = setup({ backoff: { multiplier: 2, maxMs: 5000 } });
    await trip(breaker);
    const waits: number[] = [];
    for (let i = 0; i < 5; i++) {
      const next = breaker.metrics().nextProbeAt!;
      waits.push(next - clock.now());
      clock.set(next);
      await run(breaker, 1, failWith());
    }
    expect(waits).toEqual([1000, 2000, 4000, 5000, 5000]);
  });

  it("rejects calls beyond the probe limit at once instead of queueing them", async () => {
    const { clock, breaker } = setup({ halfOpen: { maxProbes: 2, successesToClose: 2 } });
    await trip(breaker);
    clock.advance(1000);
    const gates = [deferred<string>(), deferred<string>()];
    const fn = vi.fn((_signal?: AbortSignal) => gates[fn.mock.calls.length - 1]!.promise);
    const probes = [breaker.execute(fn), breaker.execute(fn)];
    const third = await breaker.execute(fn).catch((e: unknown) => e);
    expect(fn).toHaveBeenCalledTimes(2);
    expect(third).toMatchObject({ state: "half-open", nextProbeAt: clock.now() });
    expect((third as Error).message).toContain("all probe permits are in use");
    for (const gate of gates) gate.resolve("ok");
    await Promise.all(probes);
    expect(breaker.state).toBe("closed");
    expect(breaker.metrics()).toMatchObject({ successes: 2, rejections: 1, inFlight: 0 });
  });

  it("hands a probe permit back when a probe is cancelled, without counting it", async () => {
    const { clock, breaker } = setup();
    await trip(breaker);
    clock.advance(1000);
    await run(breaker, 1, failWith(Code.Canceled));
    expect(breaker.state).toBe("half-open");
    await expect(breaker.execute(ok)).resolves.toBe("ok");
    expect(breaker.state).toBe("closed");
    expect(breaker.metrics().ignored).toBe(1);
  });

  it("returns to the base timeout after a close", async () => {
    const { clock, breaker } = setup({ backoff: { multiplier: 3, maxMs: 60_000 } });
    await trip(breaker);
    clock.advance(1000);
    await run(breaker, 1, failWith()); // reopen: 3000 ms
    expect(breaker.metrics().nextProbeAt! - clock.now()).toBe(3000);
    clock.advance(3000);
    await run(breaker, 1, ok);
    expect(breaker.state).toBe("closed");
    await trip(breaker);
    expect(breaker.metrics().nextProbeAt! - clock.now()).toBe(1000);
  });
});

describe("manual control", () => {
  it("isolate() rejects everything, past any timeout, until reset()", async () => {
    const { clock, breaker, transitions } = setup();
    breaker.isolate();
    clock.advance(1e9);
    const fn = vi.fn(ok);
    const error = await breaker.execute(fn).catch((e: unknown) => e);
    expect(fn).not.toHaveBeenCalled();
    expect(error).toMatchObject({ state: "isolated", nextProbeAt: null, retryAfterMs: null });
    expect((error as Error).message).toBe(
      'circuit breaker "svc" is isolated (forced open) until it is reset',
    );
    expect(breaker.health()).toMatchObject({ healthy: false, state: "isolated" });
    breaker.reset();
    await expect(breaker.execute(fn)).resolves.toBe("ok");
    expect(transitions.map((t) => [t.to, t.reason])).toEqual([
      ["isolated", "isolated manually"],
      ["closed", "reset manually"],
    ]);
  });

  it("reset() closes an open breaker with fresh counts and the base timeout", async () => {
    const { breaker } = setup({ backoff: { maxMs: 10_000 } });
    await trip(breaker);
    breaker.reset();
    expect(breaker.state).toBe("closed");
    await run(breaker, 2, failWith());
    expect(breaker.state).toBe("closed");
    await run(breaker, 1, failWith());
    expect(breaker.metrics().nextProbeAt).toBe(T0 + 1000);
  });

  it("disable() lets every call run and counts it, but never trips", async () => {
    const { breaker } = setup();
    breaker.disable();
    await run(breaker, 10, failWith());
    expect(breaker.state).toBe("disabled");
    expect(breaker.metrics()).toMatchObject({ failures: 10, rejections: 0 });
    expect(breaker.health().healthy).toBe(true);
  });
});

describe("fallback", () => {
  it("answers a rejected call without running it", async () => {
    const { breaker } = setup();
    await trip(breaker);
    const fn = vi.fn(ok);
    const fallback = vi.fn((_error: unknown) => "cached");
    await expect(breaker.execute(fn, { fallback })).resolves.toBe("cached");
    expect(fn).not.toHaveBeenCalled();
    expect(fallback.mock.calls[0]![0]).toBeInstanceOf(BreakerRejectedError);
    expect(breaker.metrics()).toMatchObject({ rejections: 1, fallbacks: 1 });
  });

  it("answers a failed call, which still counts as a failure", async () => {
    const { breaker } = setup();
    const fallback = (error: unknown) => `fallback for ${(error as ConnectError).code}`;
    for (let i = 0; i < 3; i++) {
      await expect(breaker.execute(failWith(Code.Unavailable), { fallback })).resolves.toBe(
        `fallback for ${Code.Unavailable}`,
      );
    }
    expect(breaker.state).toBe("open");
    expect(breaker.metrics()).toMatchObject({ failures: 3, fallbacks: 3 });
  });

  it("is not used for errors that are the caller's business", async () => {
    const { breaker } = setup();
    const fallback = vi.fn(() => "nope");
    await expect(breaker.execute(failWith(Code.NotFound), { fallback })).rejects.toMatchObject({
      code: Code.NotFound,
    });
    expect(fallback).not.toHaveBeenCalled();
  });

  it("rejects with the fallback's own error when the fallback throws", async () => {
    const { breaker } = setup();
    await trip(breaker);
    const fallback = () => {
      throw new Error("no fallback value either");
    };
    await expect(breaker.execute(ok, { fallback })).rejects.toThrow("no fallback value either");
  });
});

describe("classifier", () => {
  it("does not trip on codes that say the server answered, and counts them as successes", async () => {
    const { breaker } = setup();
    for (const code of [
      Code.InvalidArgument,
      Code.NotFound,
      Code.AlreadyExists,
      Code.PermissionDenied,
      Code.Unauthenticated,
      Code.FailedPrecondition,
      Code.OutOfRange,
      Code.Unimplemented,
    ]) {
      await run(breaker, 2, failWith(Code.Unavailable));
      await run(breaker, 1, failWith(code)); // resets the consecutive count like a success
    }
    expect(breaker.state).toBe("closed");
    expect(breaker.metrics()).toMatchObject({ failures: 16, successes: 8 });
  });

  it("trips on each code that means the server is unhealthy", async () => {
    for (const code of [
      Code.Unavailable,
      Code.DeadlineExceeded,
      Code.ResourceExhausted,
      Code.Internal,
      Code.Unknown,
      Code.Aborted,
      Code.DataLoss,
    ]) {
      const { breaker } = setup();
      await run(breaker, 3, failWith(code));
      expect(breaker.state, Code[code]).toBe("open");
    }
  });

  it("ignores cancellations: they neither trip nor reset the count", async () => {
    const { breaker } = setup();
    await run(breaker, 2, failWith());
    await run(breaker, 5, failWith(Code.Canceled));
    await breaker
      .execute(() => Promise.reject(new DOMException("gone", "AbortError")))
      .catch(() => {});
    expect(breaker.state).toBe("closed");
    await run(breaker, 1, failWith());
    expect(breaker.state).toBe("open");
    expect(breaker.metrics()).toMatchObject({ ignored: 6, failures: 3, successes: 0 });
  });

  it("uses a custom classifier when given one", async () => {
    const { breaker } = setup({
      classify: (error) => ((error as Error).message === "transient" ? "failure" : "success"),
    });
    await run(breaker, 5, () => Promise.reject(new Error("permanent")));
    expect(breaker.state).toBe("closed");
    await run(breaker, 3, () => Promise.reject(new Error("transient")));
    expect(breaker.state).toBe("open");
  });
});

describe("events, metrics and health", () => {
  it("emits success, failure and rejection events with durations", async () => {
    const { clock, breaker } = setup();
    const seen: string[] = [];
    breaker.on("success", (e) => seen.push(`success ${e.durationMs}ms stale=${e.stale}`));
    breaker.on("failure", (e) => seen.push(`failure ${(e.error as ConnectError).code}`));
    breaker.on("rejected", (e) => seen.push(`rejected ${e.state}`));
    await breaker.execute(async () => {
      clock.advance(40);
      return "ok";
    });
    await run(breaker, 3, failWith(Code.Internal));
    await run(breaker, 1, ok);
    expect(seen).toEqual([
      "success 40ms stale=false",
      `failure ${Code.Internal}`,
      `failure ${Code.Internal}`,
      `failure ${Code.Internal}`,
      "rejected open",
    ]);
  });

  it("stops calling a listener once it is removed", async () => {
    const { breaker } = setup();
    const listener = vi.fn();
    const off = breaker.on("success", listener);
    await run(breaker, 1, ok);
    off();
    await run(breaker, 1, ok);
    expect(listener).toHaveBeenCalledOnce();
  });

  it("keeps the seed's metrics: totals, successes, failures, rejections, state changes, last failure, success rate", async () => {
    const { clock, breaker } = setup();
    expect(breaker.metrics()).toEqual({
      name: "svc",
      state: "closed",
      totalCalls: 0,
      successes: 0,
      failures: 0,
      ignored: 0,
      rejections: 0,
      fallbacks: 0,
      stateChanges: 0,
      inFlight: 0,
      lastFailureTime: null,
      lastStateChangeTime: null,
      successRate: 1,
      nextProbeAt: null,
      failureRate: null, // consecutiveFailures keeps no window
      slowCallRate: null,
      bufferedCalls: 0,
    });
    await run(breaker, 1, ok);
    clock.advance(10);
    await trip(breaker);
    clock.advance(10);
    await run(breaker, 2, ok); // rejected
    clock.advance(1000);
    await run(breaker, 1, ok); // probe closes
    expect(breaker.metrics()).toEqual({
      name: "svc",
      state: "closed",
      totalCalls: 7,
      successes: 2,
      failures: 3,
      ignored: 0,
      rejections: 2,
      fallbacks: 0,
      stateChanges: 3,
      inFlight: 0,
      lastFailureTime: T0 + 10,
      lastStateChangeTime: T0 + 1020,
      successRate: 0.4,
      nextProbeAt: null,
      failureRate: null,
      slowCallRate: null,
      bufferedCalls: 0,
    });
  });

  it("reports health with a reason a person can act on", async () => {
    const { clock, breaker } = setup();
    expect(breaker.health()).toEqual({
      healthy: true,
      state: "closed",
      reason: "closed since 2025-01-01T00:00:00.000Z (initial state); calls flow",
      since: T0,
      nextProbeAt: null,
    });
    await trip(breaker);
    clock.advance(400);
    expect(breaker.health()).toEqual({
      healthy: false,
      state: "open",
      reason:
        "open since 2025-01-01T00:00:00.000Z after 3 consecutive failures (threshold 3); " +
        "next probe at 2025-01-01T00:00:01.000Z (in 600 ms)",
      since: T0,
      nextProbeAt: T0 + 1000,
    });
    clock.advance(600);
    expect(breaker.health()).toMatchObject({
      healthy: false,
      state: "half-open",
      reason: "half-open since 2025-01-01T00:00:01.000Z: 0/1 probe successes, 0/1 probes in flight",
    });
  });
});

describe("cancellation", () => {
  it("refuses a call whose signal is already aborted, with its reason, counting nothing", async () => {
    const { breaker } = setup();
    const controller = new AbortController();
    const reason = new Error("caller gave up");
    controller.abort(reason);
    const fn = vi.fn(ok);
    await expect(breaker.execute(fn, { signal: controller.signal })).rejects.toBe(reason);
    expect(fn).not.toHaveBeenCalled();
    expect(breaker.metrics()).toMatchObject({ totalCalls: 0, failures: 0, rejections: 0 });
  });

  it("hands the signal to the guarded function", async () => {
    const { breaker } = setup();
    const controller = new AbortController();
    let seen: AbortSignal | undefined;
    await breaker.execute(
      async (signal) => {
        seen = signal;
        return "ok";
      },
      { signal: controller.signal },
    );
    expect(seen).toBe(controller.signal);
  });
});

describe("permits", () => {
  it("account for calls settled later, like execute does", async () => {
    const { clock, breaker } = setup();
    for (let i = 0; i < 3; i++) breaker.acquire().failure(new ConnectError("x", Code.Unavailable));
    expect(() => breaker.acquire()).toThrow(BreakerRejectedError);
    clock.advance(1000);
    const probe = breaker.acquire();
    expect(() => breaker.acquire()).toThrow(/probe permits are in use/);
    probe.success();
    expect(() => probe.success()).toThrow(/already settled/);
    expect(breaker.state).toBe("closed");
  });
});

describe("options", () => {
  it("refuses invalid settings with a message saying what is allowed", () => {
    expect(() => new CircuitBreaker({ halfOpen: { maxProbes: 0 } })).toThrow(
      "halfOpen.maxProbes must be an integer >= 1, got 0",
    );
    expect(() => new CircuitBreaker({ resetTimeoutMs: -1 })).toThrow(/resetTimeoutMs/);
    expect(() => new CircuitBreaker({ resetTimeoutMs: 100, backoff: { maxMs: 50 } })).toThrow(
      "backoff.maxMs (50) must be >= resetTimeoutMs (100)",
    );
    expect(() => consecutiveFailures(0)).toThrow(/integer >= 1/);
    expect(() => new CircuitBreaker({ trip: [] })).toThrow(/at least one policy/);
  });
});
