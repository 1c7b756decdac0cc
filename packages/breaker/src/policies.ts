import { createWindow, type OutcomeWindow, type WindowSpec } from "./window.ts";

/**
 * Decides when a closed breaker trips. The breaker feeds it every counted call made while closed
 * and opens as soon as `record` returns true. A fresh window starts after every close.
 */
export interface TripPolicy {
  /** True when the policy needs call durations (the breaker then reads the clock per call). */
  readonly needsDuration: boolean;
  /** True when `record` needs the current time (e.g. a time-based window). */
  readonly needsTime: boolean;
  /** Records a counted call; returns true when the breaker should open now. */
  record(failed: boolean, durationMs: number, now: number): boolean;
  /** Forgets everything recorded (called on every transition to closed). */
  reset(): void;
  /** Why the policy tripped, for events and health, e.g. "5 consecutive failures". */
  describe(): string;
  /**
   * Rate policies: what the window holds at `now` (for metrics and the `rateExceeded` event).
   * Absent on policies that keep no window.
   */
  reading?(now: number): RateReading;
  /**
   * Judges the probes that closed a half-open breaker (their durations, all successes); returns
   * why the breaker should reopen instead, or undefined to let it close. resilience4j does the
   * same with the slow-call rate of the half-open calls.
   */
  judgeProbes?(durationsMs: ArrayLike<number>, count: number): RateReading | undefined;
}

/** A rate policy's window: how many calls it holds and how many were failures or slow. */
export interface RateReading {
  readonly kind: "failure" | "slow";
  /** Calls in the window. */
  readonly calls: number;
  /** Of those, failed calls (kind "failure") or slow calls (kind "slow"). */
  readonly hits: number;
  /** hits / calls, or 0 when the window is empty. */
  readonly rate: number;
  readonly threshold: number;
  /** Calls needed before the rate decides anything. */
  readonly minimumCalls: number;
  /** Human-readable span, e.g. "last 20 calls", "last 10000 ms" or "half-open probes". */
  readonly over: string;
}

/**
 * Whether `hits` of `calls` reach `threshold`. A division, not `hits >= threshold * calls`: the
 * product is rounded (0.56 * 25 = 14.000000000000002), while hits / calls and the threshold's
 * decimal are each the double nearest the same number whenever they are equal, so a rate
 * exactly at the threshold always trips.
 */
export function reachesThreshold(hits: number, calls: number, threshold: number): boolean {
  return calls > 0 && hits / calls >= threshold;
}

/** Creates a fresh policy; each breaker (one per target in the interceptor) gets its own. */
export type TripPolicyFactory = () => TripPolicy;

/** The seed's policy: open after `threshold` failures in a row; any success starts the count again. */
export function consecutiveFailures(threshold: number): TripPolicyFactory {
  assertCount("consecutiveFailures threshold", threshold);
  return () => new ConsecutiveFailures(threshold);
}

/** Options of a rate policy over a sliding window. */
export interface RatePolicyOptions {
  /** Trip when the rate in the window is at least this fraction, in (0, 1]. */
  threshold: number;
  /** No decision until the window holds this many calls (capped at a count window's size). Default 10. */
  minimumCalls?: number;
  /** The window the rate is computed over, see `countWindow` and `timeWindow`. */
  window: WindowSpec;
}

/** Open when the share of failed calls in the window reaches `threshold`. */
export function failureRate(options: RatePolicyOptions): TripPolicyFactory {
  const minimumCalls = checkRate("failureRate", options);
  return () =>
    new RatePolicy(
      "failure",
      options.threshold,
      minimumCalls,
      options.window,
      Number.POSITIVE_INFINITY,
    );
}

/** Options of the slow-call policy. */
export interface SlowCallRateOptions extends RatePolicyOptions {
  /** A call taking at least this many milliseconds is slow, whether it succeeded or failed. */
  slowerThanMs: number;
}

/** Open when the share of slow calls in the window reaches `threshold`. */
export function slowCallRate(options: SlowCallRateOptions): TripPolicyFactory {
  const minimumCalls = checkRate("slowCallRate", options);
  if (!(options.slowerThanMs > 0))
    throw new RangeError(`slowCallRate slowerThanMs must be > 0, got ${options.slowerThanMs}`);
  return () =>
    new RatePolicy("slow", options.threshold, minimumCalls, options.window, options.slowerThanMs);
}

class ConsecutiveFailures implements TripPolicy {
  readonly needsDuration = false;
  readonly needsTime = false;
  readonly #threshold: number;
  #count = 0;

  constructor(threshold: number) {
    this.#threshold = threshold;
  }

  record(failed: boolean): boolean {
    if (!failed) {
      this.#count = 0;
      return false;
    }
    return ++this.#count >= this.#threshold;
  }

  reset(): void {
    this.#count = 0;
  }

  describe(): string {
    return `${this.#count} consecutive failures (threshold ${this.#threshold})`;
  }
}

/** Failure rate (`slowerThanMs` infinite) or slow-call rate over one window. */
class RatePolicy implements TripPolicy {
  readonly needsDuration: boolean;
  readonly needsTime: boolean;
  readonly #what: "failure" | "slow";
  readonly #threshold: number;
  readonly #minimumCalls: number;
  readonly #window: OutcomeWindow;
  readonly #slowerThanMs: number;

  constructor(
    what: "failure" | "slow",
    threshold: number,
    minimumCalls: number,
    window: WindowSpec,
    slowerThanMs: number,
  ) {
    this.#what = what;
    this.#threshold = threshold;
    this.#minimumCalls = minimumCalls;
    this.#window = createWindow(window);
    this.#slowerThanMs = slowerThanMs;
    this.needsDuration = what === "slow";
    this.needsTime = window.kind === "time";
  }

  record(failed: boolean, durationMs: number, now: number): boolean {
    const w = this.#window;
    w.add(this.#what === "failure" ? failed : durationMs >= this.#slowerThanMs, now);
    return w.total >= this.#minimumCalls && reachesThreshold(w.hits, w.total, this.#threshold);
  }

  reading(now: number): RateReading {
    const w = this.#window;
    w.advance(now);
    return this.#reading(w.hits, w.total, w.describe());
  }

  judgeProbes(durationsMs: ArrayLike<number>, count: number): RateReading | undefined {
    if (this.#what !== "slow" || count === 0) return undefined;
    let slow = 0;
    for (let i = 0; i < count; i++) if (durationsMs[i]! >= this.#slowerThanMs) slow++;
    return reachesThreshold(slow, count, this.#threshold)
      ? this.#reading(slow, count, "half-open probes")
      : undefined;
  }

  #reading(hits: number, calls: number, over: string): RateReading {
    return {
      kind: this.#what,
      calls,
      hits,
      rate: calls === 0 ? 0 : hits / calls,
      threshold: this.#threshold,
      minimumCalls: this.#minimumCalls,
      over,
    };
  }

  reset(): void {
    this.#window.clear();
  }

  describe(): string {
    const w = this.#window;
    return describeReading(this.#reading(w.hits, w.total, w.describe()));
  }
}

function assertCount(what: string, value: number): void {
  if (!Number.isInteger(value) || value < 1)
    throw new RangeError(`${what} must be an integer >= 1, got ${value}`);
}

function checkRate(what: string, options: RatePolicyOptions): number {
  if (!(options.threshold > 0 && options.threshold <= 1))
    throw new RangeError(
      `${what} threshold is a fraction in (0, 1], e.g. 0.5 for 50%; got ${options.threshold}`,
    );
  createWindow(options.window); // validates the spec now rather than at the first breaker
  const minimumCalls = options.minimumCalls ?? 10;
  assertCount(`${what} minimumCalls`, minimumCalls);
  // A count window can never hold more calls than its size (resilience4j does the same).
  return options.window.kind === "count"
    ? Math.min(minimumCalls, options.window.size)
    : minimumCalls;
}

/** "failure rate 56.0% (14/25) over the last 25 calls reached the threshold of 56.0%" */
export function describeReading(r: RateReading): string {
  return (
    `${r.kind} rate ${(100 * r.rate).toFixed(1)}% (${r.hits}/${r.calls}) over the ${r.over}` +
    ` reached the threshold of ${(100 * r.threshold).toFixed(1)}%`
  );
}
