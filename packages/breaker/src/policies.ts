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
    return w.total >= this.#minimumCalls && w.hits >= this.#threshold * w.total;
  }

  reset(): void {
    this.#window.clear();
  }

  describe(): string {
    const w = this.#window;
    const pct = w.total === 0 ? 0 : (100 * w.hits) / w.total;
    return (
      `${this.#what} rate ${pct.toFixed(1)}% (${w.hits}/${w.total}) over the ${w.describe()}` +
      ` reached the threshold of ${(100 * this.#threshold).toFixed(1)}%`
    );
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
