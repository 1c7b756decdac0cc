import { type Clock, type Random, systemClock } from "@quartet/determinism";
import { type BackoffOptions, ResetTimeout } from "./backoff.ts";
import { type Classifier, connectClassifier, type Outcome } from "./classifier.ts";
import { BreakerRejectedError, type RejectionInfo } from "./errors.ts";
import { type BreakerEventType, Emitter, type Listener } from "./events.ts";
import {
  consecutiveFailures,
  describeReading,
  type RateReading,
  type TripPolicy,
  type TripPolicyFactory,
} from "./policies.ts";
import type { BreakerState } from "./state.ts";

/** Options of a `CircuitBreaker`. Every field has a default. */
export interface BreakerOptions {
  /** Shown in rejections, events and health; default "breaker". */
  name?: string;
  /**
   * Where time comes from; default `systemClock`. Time is never read any other way. Only `now()`
   * is used (the breaker sets no timers), so any `{ now }` object will do.
   */
  clock?: Pick<Clock, "now">;
  /** Randomness for backoff jitter; default `Math.random`. Use `seededRandom(seed)` to reproduce. */
  random?: Random;
  /** When a closed breaker opens: any policy tripping opens it. Default `consecutiveFailures(5)`. */
  trip?: TripPolicyFactory | readonly TripPolicyFactory[];
  /** How long the breaker stays open before probing, in ms; default 30000. */
  resetTimeoutMs?: number;
  /** Grow the open period on every reopen without a close in between; default: no growth. */
  backoff?: BackoffOptions;
  halfOpen?: {
    /** Probes allowed to run at once; further calls are rejected, not queued. Default 1. */
    maxProbes?: number;
    /**
     * Probe successes needed to close; default 1. With a slow-call policy, the probes are then
     * judged together: if their slow share reaches its threshold the breaker reopens instead.
     */
    successesToClose?: number;
    /**
     * Longest stay in half-open, in ms, before going back to open if the probes have not decided
     * (resilience4j's maxWaitDurationInHalfOpenState); default 0: wait for them indefinitely.
     */
    maxWaitMs?: number;
  };
  /** Which errors count as failures; default `connectClassifier`. */
  classify?: Classifier;
  /** Builds the error rejected calls fail with; default `new BreakerRejectedError(info)`. */
  rejectionError?: (info: RejectionInfo) => unknown;
  /** Capture a stack trace in the default rejection error (costly; default false). */
  captureRejectionStack?: boolean;
}

/** Per-call options of `execute`. */
export interface ExecuteOptions<T> {
  /** Passed to the guarded function. If already aborted, the call is refused with its reason, uncounted. */
  signal?: AbortSignal | undefined;
  /**
   * Called instead of failing when the breaker rejects the call or the call fails with an error
   * classified as a failure; its result (or throw) becomes the call's. Other errors propagate.
   */
  fallback?: (error: unknown) => T | PromiseLike<T>;
}

/** A point-in-time copy of the breaker's counters. */
export interface BreakerMetrics {
  readonly name: string;
  readonly state: BreakerState;
  /** Calls offered to the breaker: run (including any still in flight) or rejected. */
  readonly totalCalls: number;
  readonly successes: number;
  /** Calls whose error was classified as a failure. */
  readonly failures: number;
  /** Calls whose error was classified "ignore" (e.g. cancelled by the caller). */
  readonly ignored: number;
  readonly rejections: number;
  /** Rejections and failures answered by a fallback. */
  readonly fallbacks: number;
  readonly stateChanges: number;
  /** Calls started and not yet finished. */
  readonly inFlight: number;
  /** Time of the last counted failure (ms since the epoch), or null. */
  readonly lastFailureTime: number | null;
  readonly lastStateChangeTime: number | null;
  /** successes / (successes + failures); 1 before any counted call. */
  readonly successRate: number;
  /** When an open breaker lets the next probe through, else null. */
  readonly nextProbeAt: number | null;
  /**
   * Failure rate in the window of the first `failureRate` policy (0 while empty), as it stands
   * now, before `minimumCalls` too; null without such a policy.
   */
  readonly failureRate: number | null;
  /** Slow-call rate in the window of the first `slowCallRate` policy; null without one. */
  readonly slowCallRate: number | null;
  /** Calls in the window of the first rate policy (failure rate first); 0 without one. */
  readonly bufferedCalls: number;
}

/** Whether the guarded dependency should be used, with a sentence saying why. */
export interface BreakerHealth {
  /** True when calls flow normally (closed or disabled). */
  readonly healthy: boolean;
  readonly state: BreakerState;
  readonly reason: string;
  /** When the breaker entered its current state (ms since the epoch). */
  readonly since: number;
  readonly nextProbeAt: number | null;
}

/**
 * Accounting for a call whose outcome is reported later, for calls that cannot be wrapped
 * in `execute` (e.g. a streaming response). Report exactly one outcome.
 */
export interface Permit {
  success(): void;
  /** Classifies `error` and records it; returns how it was classified. */
  failure(error: unknown): Outcome;
  /** The call ended without saying anything about the dependency (e.g. abandoned): not counted. */
  ignore(): void;
}

type Settle = (value: unknown) => unknown;

/**
 * A circuit breaker: a pure state machine driven by call outcomes and an injected clock. It
 * needs no timers: the open -> half-open transition happens lazily, at the first call or state
 * read after the reset timeout.
 *
 * Results and generations: every transition starts a new generation. A call's result is always
 * counted in the metrics and events, but it moves the state only if the breaker is still in
 * the generation the call started in. So a slow call started while closed cannot close (or
 * reopen) a breaker that has since opened, and half-open probe permits are never handed back
 * to a later generation.
 */
export class CircuitBreaker {
  readonly name: string;
  readonly #clock: Pick<Clock, "now">;
  readonly #policies: TripPolicy[];
  readonly #needsDuration: boolean;
  readonly #needsTime: boolean;
  readonly #resetTimeout: ResetTimeout;
  readonly #maxProbes: number;
  readonly #successesToClose: number;
  readonly #maxWaitMs: number;
  /** Durations of the current half-open generation's successful probes, for slow-call judging. */
  readonly #probeDurations: Float64Array;
  readonly #classify: Classifier;
  readonly #rejectionError: (info: RejectionInfo) => unknown;
  readonly #events = new Emitter();

  #state: BreakerState = "closed";
  #generation = 0;
  /** Settle handlers bound to the current generation, shared by all its calls (no per-call closures). */
  #onFulfilled: Settle;
  #onRejected: Settle;
  /** Per-call timing is needed for slow-call policies and call events. */
  #timed: boolean;
  #reason = "initial state";
  #since: number;
  #nextProbeAt = 0;
  /** Openings since the last close: the backoff exponent. */
  #openings = 0;
  #probesInFlight = 0;
  #probeSuccesses = 0;

  #totalCalls = 0;
  #successes = 0;
  #failures = 0;
  #ignored = 0;
  #rejections = 0;
  #fallbacks = 0;
  #stateChanges = 0;
  #lastFailureTime: number | null = null;
  #lastStateChangeTime: number | null = null;

  constructor(options: BreakerOptions = {}) {
    this.name = options.name ?? "breaker";
    this.#clock = options.clock ?? systemClock;
    const trip = options.trip ?? consecutiveFailures(5);
    const factories: readonly TripPolicyFactory[] = typeof trip === "function" ? [trip] : trip;
    if (factories.length === 0) throw new RangeError("trip: give at least one policy");
    this.#policies = factories.map((create) => create());
    this.#needsDuration = this.#policies.some((p) => p.needsDuration);
    this.#needsTime = this.#policies.some((p) => p.needsTime);
    this.#resetTimeout = new ResetTimeout(
      options.resetTimeoutMs ?? 30_000,
      options.backoff,
      options.random ?? Math.random,
    );
    this.#maxProbes = options.halfOpen?.maxProbes ?? 1;
    this.#successesToClose = options.halfOpen?.successesToClose ?? 1;
    if (!Number.isInteger(this.#maxProbes) || this.#maxProbes < 1)
      throw new RangeError(`halfOpen.maxProbes must be an integer >= 1, got ${this.#maxProbes}`);
    if (!Number.isInteger(this.#successesToClose) || this.#successesToClose < 1)
      throw new RangeError(
        `halfOpen.successesToClose must be an integer >= 1, got ${this.#successesToClose}`,
      );
    this.#maxWaitMs = options.halfOpen?.maxWaitMs ?? 0;
    if (!(this.#maxWaitMs >= 0 && Number.isFinite(this.#maxWaitMs)))
      throw new RangeError(
        `halfOpen.maxWaitMs must be a number of ms >= 0 (0: wait for the probes indefinitely), got ${this.#maxWaitMs}`,
      );
    this.#probeDurations = new Float64Array(this.#successesToClose);
    this.#classify = options.classify ?? connectClassifier;
    const captureStack = options.captureRejectionStack === true;
    this.#rejectionError =
      options.rejectionError ?? ((info) => new BreakerRejectedError(info, { captureStack }));
    this.#timed = this.#needsDuration;
    this.#since = this.#clock.now();
    [this.#onFulfilled, this.#onRejected] = this.#bindGeneration(0);
  }

  /** The current state (an open breaker whose timeout has passed reads as half-open). */
  get state(): BreakerState {
    this.#checkTimeout();
    return this.#state;
  }

  /**
   * Runs `fn` if the breaker lets it, and records its outcome. Rejected calls fail with the
   * rejection error (a `BreakerRejectedError` by default) without calling `fn`, or resolve
   * through `options.fallback`.
   */
  execute<T>(
    fn: (signal: AbortSignal | undefined) => Promise<T>,
    options?: ExecuteOptions<T>,
  ): Promise<T> {
    const signal = options?.signal;
    if (signal?.aborted) return Promise.reject(signal.reason);
    this.#totalCalls++;
    // Fast path: closed, nothing per-call to remember, so the generation's shared handlers do.
    if (this.#state === "closed" && !this.#timed && options?.fallback === undefined) {
      return invoke(fn, signal).then(this.#onFulfilled, this.#onRejected) as Promise<T>;
    }
    return this.#executeSlow(fn, signal, options?.fallback);
  }

  #executeSlow<T>(
    fn: (signal: AbortSignal | undefined) => Promise<T>,
    signal: AbortSignal | undefined,
    fallback: ((error: unknown) => T | PromiseLike<T>) | undefined,
  ): Promise<T> {
    if (!this.#admit()) {
      const error = this.#reject();
      if (fallback === undefined) return Promise.reject(error);
      this.#fallbacks++;
      return new Promise<T>((resolve) => resolve(fallback(error)));
    }
    if (!this.#timed && fallback === undefined)
      return invoke(fn, signal).then(this.#onFulfilled, this.#onRejected) as Promise<T>;
    const generation = this.#generation;
    // Timing is decided at the start: a listener added mid-call must not see a bogus duration.
    const start = this.#timed ? this.#clock.now() : Number.NaN;
    const elapsed = () => (Number.isNaN(start) ? 0 : this.#clock.now() - start);
    return invoke(fn, signal).then(
      (value) => {
        this.#succeeded(generation, elapsed());
        return value;
      },
      (error: unknown) => {
        const outcome = this.#failed(generation, error, elapsed());
        if (outcome !== "failure" || fallback === undefined) throw error;
        this.#fallbacks++;
        return fallback(error);
      },
    );
  }

  /**
   * Asks to run one call whose outcome is reported later through the returned permit.
   * Throws the rejection error if the breaker does not let the call run.
   */
  acquire(): Permit {
    this.#totalCalls++;
    if (!this.#admit()) throw this.#reject();
    const generation = this.#generation;
    const start = this.#clock.now();
    let settled = false;
    const settle = () => {
      if (settled) throw new Error(`permit of breaker "${this.name}" was already settled`);
      settled = true;
      return this.#clock.now() - start;
    };
    return {
      success: () => this.#succeeded(generation, settle()),
      failure: (error) => this.#failed(generation, error, settle()),
      ignore: () => {
        settle();
        this.#ignore(generation);
      },
    };
  }

  /** Forces the breaker open: every call is rejected until `reset()`. */
  isolate(): void {
    if (this.#state !== "isolated")
      this.#transition("isolated", "isolated manually", this.#clock.now());
  }

  /** Turns the breaker off: every call runs and is counted, nothing trips, until `reset()`. */
  disable(): void {
    if (this.#state !== "disabled")
      this.#transition("disabled", "disabled manually", this.#clock.now());
  }

  /** Closes the breaker from any state, with empty trip windows and the base reset timeout. */
  reset(): void {
    this.#openings = 0;
    if (this.#state === "closed") {
      for (const policy of this.#policies) policy.reset();
      return;
    }
    this.#transition("closed", "reset manually", this.#clock.now());
  }

  /** Adds a listener; returns a function that removes it. */
  on<K extends BreakerEventType>(type: K, listener: Listener<K>): () => void {
    (this.#events[type] as Set<Listener<K>>).add(listener);
    this.#updateTimed();
    return () => {
      (this.#events[type] as Set<Listener<K>>).delete(listener);
      this.#updateTimed();
    };
  }

  metrics(): BreakerMetrics {
    const now = this.#clock.now();
    this.#checkTimeout(now);
    let failureRate: RateReading | undefined;
    let slowCallRate: RateReading | undefined;
    for (const policy of this.#policies) {
      const reading = policy.reading?.(now);
      if (reading?.kind === "failure") failureRate ??= reading;
      else if (reading?.kind === "slow") slowCallRate ??= reading;
    }
    const counted = this.#successes + this.#failures;
    const settled = counted + this.#ignored + this.#rejections;
    return {
      name: this.name,
      state: this.#state,
      totalCalls: this.#totalCalls,
      successes: this.#successes,
      failures: this.#failures,
      ignored: this.#ignored,
      rejections: this.#rejections,
      fallbacks: this.#fallbacks,
      stateChanges: this.#stateChanges,
      inFlight: this.#totalCalls - settled,
      lastFailureTime: this.#lastFailureTime,
      lastStateChangeTime: this.#lastStateChangeTime,
      successRate: counted === 0 ? 1 : this.#successes / counted,
      nextProbeAt: this.#state === "open" ? this.#nextProbeAt : null,
      failureRate: failureRate?.rate ?? null,
      slowCallRate: slowCallRate?.rate ?? null,
      bufferedCalls: (failureRate ?? slowCallRate)?.calls ?? 0,
    };
  }

  health(): BreakerHealth {
    const now = this.#clock.now();
    this.#checkTimeout(now);
    const state = this.#state;
    const since = new Date(this.#since).toISOString();
    let reason: string;
    switch (state) {
      case "closed":
        reason = `closed since ${since} (${this.#reason}); calls flow`;
        break;
      case "open":
        reason =
          `open since ${since} after ${this.#reason}; next probe at ` +
          `${new Date(this.#nextProbeAt).toISOString()} (in ${this.#nextProbeAt - now} ms)`;
        break;
      case "half-open":
        reason =
          `half-open since ${since}: ${this.#probeSuccesses}/${this.#successesToClose} probe ` +
          `successes, ${this.#probesInFlight}/${this.#maxProbes} probes in flight`;
        break;
      case "isolated":
        reason = `isolated (forced open) since ${since}; rejects every call until reset()`;
        break;
      case "disabled":
        reason = `disabled since ${since}; every call runs and nothing trips until reset()`;
        break;
    }
    return {
      healthy: state === "closed" || state === "disabled",
      state,
      reason,
      since: this.#since,
      nextProbeAt: state === "open" ? this.#nextProbeAt : null,
    };
  }

  /** Decides whether a call may run now, taking a probe permit when half-open. */
  #admit(): boolean {
    switch (this.#state) {
      case "closed":
      case "disabled":
        return true;
      case "isolated":
        return false;
      case "open":
        if (!this.#checkTimeout()) return false;
        break;
      case "half-open":
        if (this.#maxWaitMs > 0 && !this.#checkTimeout()) return false;
        break;
    }
    if (this.#probesInFlight >= this.#maxProbes) return false;
    this.#probesInFlight++;
    return true;
  }

  /**
   * Moves open -> half-open once the reset timeout has passed, and half-open -> open once the
   * maximum wait in half-open has; true if now half-open. Transitions are dated when they were
   * due, not when noticed, so a breaker nobody looked at moves through both in one read.
   */
  #checkTimeout(now?: number): boolean {
    if (this.#state === "half-open") {
      if (this.#maxWaitMs === 0) return true;
      const t = now ?? this.#clock.now();
      const deadline = this.#since + this.#maxWaitMs;
      if (t < deadline) return true;
      const inFlight = this.#probesInFlight;
      this.#open(
        deadline,
        `no decision within ${this.#maxWaitMs} ms in half-open (${this.#probeSuccesses}/` +
          `${this.#successesToClose} probe successes, ${inFlight} probe${inFlight === 1 ? "" : "s"} in flight)`,
      );
      return this.#checkTimeout(t);
    }
    if (this.#state !== "open") return false;
    const t = now ?? this.#clock.now();
    if (t < this.#nextProbeAt) return false;
    this.#transition("half-open", "reset timeout elapsed", t);
    return true;
  }

  #reject(): unknown {
    this.#rejections++;
    const state = this.#state;
    const at = this.#clock.now();
    const info: RejectionInfo = {
      breaker: this.name,
      state,
      at,
      nextProbeAt: state === "open" ? this.#nextProbeAt : state === "half-open" ? at : null,
    };
    if (this.#events.rejected.size > 0) this.#events.emit("rejected", info);
    return this.#rejectionError(info);
  }

  #succeeded(generation: number, durationMs: number): void {
    this.#successes++;
    const current = generation === this.#generation;
    if (this.#events.success.size > 0)
      this.#events.emit("success", { breaker: this.name, durationMs, stale: !current });
    if (!current) return;
    if (this.#state === "closed") {
      this.#recordClosed(false, durationMs);
    } else if (this.#state === "half-open") {
      this.#probesInFlight--;
      this.#probeDurations[this.#probeSuccesses] = durationMs;
      if (++this.#probeSuccesses >= this.#successesToClose) this.#closeOrReopen();
    }
  }

  /** Enough probes succeeded: close, unless they were too slow for a slow-call policy. */
  #closeOrReopen(): void {
    const now = this.#clock.now();
    const count = this.#probeSuccesses;
    for (const policy of this.#policies) {
      const slow = policy.judgeProbes?.(this.#probeDurations, count);
      if (slow !== undefined) {
        this.#rateExceeded(slow, "half-open", now);
        this.#open(now, describeReading(slow));
        return;
      }
    }
    this.#transition("closed", `${count} probe success${count === 1 ? "" : "es"}`, now);
  }

  #rateExceeded(reading: RateReading, state: "closed" | "half-open", at: number): void {
    if (this.#events.rateExceeded.size === 0) return;
    const { kind, rate, hits, calls, threshold, over } = reading;
    this.#events.emit("rateExceeded", {
      breaker: this.name,
      state,
      kind,
      rate,
      hits,
      calls,
      threshold,
      over,
      at,
    });
  }

  #failed(generation: number, error: unknown, durationMs: number): Outcome {
    let outcome: Outcome;
    try {
      outcome = this.#classify(error);
    } catch {
      outcome = "failure";
    }
    if (outcome === "success") {
      this.#succeeded(generation, durationMs);
      return outcome;
    }
    if (outcome === "ignore") {
      this.#ignore(generation);
      return outcome;
    }
    const current = generation === this.#generation;
    this.#failures++;
    const now = this.#clock.now();
    this.#lastFailureTime = now;
    if (this.#events.failure.size > 0)
      this.#events.emit("failure", { breaker: this.name, durationMs, stale: !current, error });
    if (!current) return outcome;
    if (this.#state === "closed") {
      this.#recordClosed(true, durationMs, now);
    } else if (this.#state === "half-open") {
      this.#open(now, `a failed probe (${describeError(error)})`);
    }
    return outcome;
  }

  #ignore(generation: number): void {
    this.#ignored++;
    if (generation === this.#generation && this.#state === "half-open") this.#probesInFlight--;
  }

  #recordClosed(failed: boolean, durationMs: number, now?: number): void {
    const t = now ?? (this.#needsTime ? this.#clock.now() : 0);
    const policies = this.#policies;
    for (let i = 0; i < policies.length; i++) {
      const policy = policies[i]!;
      if (policy.record(failed, durationMs, t)) {
        const at = now ?? this.#clock.now();
        const reading = policy.reading?.(t);
        if (reading !== undefined) this.#rateExceeded(reading, "closed", at);
        this.#open(at, policy.describe());
        return;
      }
    }
  }

  #open(now: number, reason: string): void {
    this.#nextProbeAt = now + this.#resetTimeout.delayMs(this.#openings);
    this.#openings++;
    this.#transition("open", reason, now);
  }

  #transition(to: BreakerState, reason: string, now: number): void {
    const from = this.#state;
    this.#state = to;
    this.#generation++;
    [this.#onFulfilled, this.#onRejected] = this.#bindGeneration(this.#generation);
    this.#reason = reason;
    this.#since = now;
    this.#stateChanges++;
    this.#lastStateChangeTime = now;
    this.#probesInFlight = 0;
    this.#probeSuccesses = 0;
    if (to === "closed") {
      this.#openings = 0;
      for (const policy of this.#policies) policy.reset();
    }
    if (this.#events.stateChange.size > 0)
      this.#events.emit("stateChange", {
        breaker: this.name,
        from,
        to,
        reason,
        at: now,
        nextProbeAt: to === "open" ? this.#nextProbeAt : null,
      });
  }

  #bindGeneration(generation: number): [Settle, Settle] {
    return [
      (value) => {
        this.#succeeded(generation, 0);
        return value;
      },
      (error) => {
        this.#failed(generation, error, 0);
        throw error;
      },
    ];
  }

  #updateTimed(): void {
    this.#timed = this.#needsDuration || this.#events.success.size + this.#events.failure.size > 0;
  }
}

/** Calls `fn`, turning a synchronous throw into a rejection so it is recorded like any failure. */
function invoke<T>(
  fn: (signal: AbortSignal | undefined) => Promise<T>,
  signal: AbortSignal | undefined,
): Promise<T> {
  try {
    return fn(signal);
  } catch (error) {
    return Promise.reject(error);
  }
}

function describeError(error: unknown): string {
  if (error instanceof Error) return error.message ? `${error.name}: ${error.message}` : error.name;
  return String(error);
}
