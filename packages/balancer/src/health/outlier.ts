import {
  CircuitBreaker,
  type Classifier,
  connectClassifier,
  consecutiveFailures,
  countWindow,
  failureRate,
  type Permit,
  type TripPolicyFactory,
} from "@quartet/breaker";
import type { Clock } from "@quartet/determinism";
import type { Endpoint } from "../endpoint.ts";

/** Passive outlier detection (Envoy's outlier_detection), one circuit breaker per endpoint. */
export interface OutlierDetectionOptions {
  /** Eject after this many failures in a row (default 5); 0 turns the rule off. */
  consecutiveFailures?: number;
  /**
   * Eject when the failure share over the last `windowSize` calls (default 100) reaches
   * `threshold`, once `minimumCalls` (default 20) were seen. `false` turns the rule off.
   * Default threshold 0.5.
   */
  failureRate?: { threshold: number; minimumCalls?: number; windowSize?: number } | false;
  /** First ejection lasts this long (default 30 s); each re-ejection without recovery doubles it. */
  baseEjectionMs?: number;
  /** Longest ejection (default 300 s). */
  maxEjectionMs?: number;
  /**
   * Never eject more than this share of the endpoints (default 0.5, Envoy's
   * max_ejection_percent). A breaker that trips past the cap is reset and its endpoint stays.
   */
  maxEjectedShare?: number;
  /** Which call errors count as endpoint failures; default the breaker's `connectClassifier`. */
  classify?: Classifier;
}

/** What the detector knows about one endpoint. */
export interface OutlierState {
  readonly breaker: CircuitBreaker;
  ejected: boolean;
  /** Times ejected in total. */
  ejections: number;
  /** When an ejected endpoint returns to rotation (clock ms), else null. */
  returnsAt: number | null;
}

/**
 * Ejects endpoints whose calls keep failing. Each endpoint has one `CircuitBreaker`: it trips
 * on consecutive failures or a failure rate, and its growing reset timeout is the ejection
 * time. An ejected endpoint returns to rotation when the breaker would let a probe through
 * (half-open); one successful call closes the breaker, one failure ejects it again for
 * twice as long.
 */
export class OutlierDetector {
  readonly #options: Required<Omit<OutlierDetectionOptions, "failureRate">> & {
    failureRate: OutlierDetectionOptions["failureRate"];
  };
  readonly #clock: Clock;
  readonly #onChange: () => void;
  readonly #states = new Map<Endpoint, OutlierState>();
  readonly #timers = new Map<Endpoint, unknown>();

  constructor(options: OutlierDetectionOptions, clock: Clock, onChange: () => void) {
    this.#options = {
      consecutiveFailures: options.consecutiveFailures ?? 5,
      failureRate: options.failureRate ?? { threshold: 0.5 },
      baseEjectionMs: options.baseEjectionMs ?? 30_000,
      maxEjectionMs: options.maxEjectionMs ?? 300_000,
      maxEjectedShare: options.maxEjectedShare ?? 0.5,
      classify: options.classify ?? connectClassifier,
    };
    const share = this.#options.maxEjectedShare;
    if (!(share >= 0 && share <= 1))
      throw new RangeError(`outlierDetection.maxEjectedShare must be in [0, 1], got ${share}`);
    this.#clock = clock;
    this.#onChange = onChange;
  }

  /** The failure share that ejects an endpoint; 0 when the failure-rate rule is off. */
  get failureThreshold(): number {
    return this.#options.failureRate ? this.#options.failureRate.threshold : 0;
  }

  add(endpoint: Endpoint): void {
    if (this.#states.has(endpoint)) return;
    const o = this.#options;
    const trip: TripPolicyFactory[] = [];
    if (o.consecutiveFailures > 0) trip.push(consecutiveFailures(o.consecutiveFailures));
    if (o.failureRate) {
      const size = o.failureRate.windowSize ?? 100;
      trip.push(
        failureRate({
          threshold: o.failureRate.threshold,
          minimumCalls: o.failureRate.minimumCalls ?? 20,
          window: countWindow(size),
        }),
      );
    }
    if (trip.length === 0)
      throw new RangeError("outlierDetection: enable consecutiveFailures or failureRate");
    const breaker = new CircuitBreaker({
      name: endpoint.id,
      clock: this.#clock,
      trip,
      resetTimeoutMs: o.baseEjectionMs,
      backoff: { multiplier: 2, maxMs: Math.max(o.maxEjectionMs, o.baseEjectionMs) },
      classify: o.classify,
    });
    const state: OutlierState = { breaker, ejected: false, ejections: 0, returnsAt: null };
    this.#states.set(endpoint, state);
    breaker.on("stateChange", (event) => {
      if (event.to === "open" || event.to === "isolated")
        this.#eject(endpoint, state, event.nextProbeAt);
      else if (state.ejected) this.#reinstate(endpoint, state);
    });
  }

  remove(endpoint: Endpoint): void {
    this.#clearTimer(endpoint);
    this.#states.delete(endpoint);
  }

  /**
   * Forgets an endpoint's failures and ends its ejection: an active health check just saw it
   * recover (Envoy's successful_active_health_check_uneject_host).
   */
  forgive(endpoint: Endpoint): void {
    const state = this.#states.get(endpoint);
    if (!state) return;
    state.breaker.reset();
    this.#reinstate(endpoint, state);
  }

  state(endpoint: Endpoint): OutlierState | undefined {
    return this.#states.get(endpoint);
  }

  isEjected(endpoint: Endpoint): boolean {
    return this.#states.get(endpoint)?.ejected ?? false;
  }

  /**
   * A permit to record one call's outcome, or undefined when the endpoint's breaker does not
   * take calls now (ejected, or its one half-open probe is already running).
   */
  acquire(endpoint: Endpoint): Permit | undefined {
    const state = this.#states.get(endpoint);
    if (!state) return undefined;
    try {
      return state.breaker.acquire();
    } catch {
      return undefined;
    }
  }

  close(): void {
    for (const endpoint of [...this.#timers.keys()]) this.#clearTimer(endpoint);
  }

  #eject(endpoint: Endpoint, state: OutlierState, returnsAt: number | null): void {
    let ejected = 0;
    for (const s of this.#states.values()) if (s.ejected) ejected++;
    if (
      !state.ejected &&
      ejected + 1 > Math.floor(this.#options.maxEjectedShare * this.#states.size)
    ) {
      // Past the cap: keep the endpoint in rotation with fresh counters, as Envoy does.
      state.breaker.reset();
      return;
    }
    state.ejected = true;
    state.ejections++;
    state.returnsAt = returnsAt;
    this.#clearTimer(endpoint);
    if (returnsAt !== null) {
      const handle = this.#clock.setTimeout(
        () => {
          this.#timers.delete(endpoint);
          // Reading the state moves an open breaker whose timeout passed to half-open.
          if (state.breaker.state === "half-open") this.#reinstate(endpoint, state);
        },
        Math.max(0, returnsAt - this.#clock.now()),
      );
      this.#timers.set(endpoint, handle);
    }
    this.#onChange();
  }

  #reinstate(endpoint: Endpoint, state: OutlierState): void {
    if (!state.ejected) return;
    state.ejected = false;
    state.returnsAt = null;
    this.#clearTimer(endpoint);
    this.#onChange();
  }

  #clearTimer(endpoint: Endpoint): void {
    const handle = this.#timers.get(endpoint);
    if (handle !== undefined) this.#clock.clearTimeout(handle);
    this.#timers.delete(endpoint);
  }
}
