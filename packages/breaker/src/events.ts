import type { RejectionInfo } from "./errors.ts";
import type { BreakerState } from "./state.ts";

/** A transition between states. */
export interface StateChangeEvent {
  readonly breaker: string;
  readonly from: BreakerState;
  readonly to: BreakerState;
  /** Why, e.g. "5 consecutive failures (threshold 5)" or "reset timeout elapsed". */
  readonly reason: string;
  /** When (ms since the epoch, breaker clock). */
  readonly at: number;
  /** When an `open` breaker will let the next probe through; null in other states. */
  readonly nextProbeAt: number | null;
}

/** A finished call that was let through. */
export interface CallEvent {
  readonly breaker: string;
  readonly durationMs: number;
  /**
   * True when the breaker changed state while the call ran: the result is counted in metrics
   * but does not move the new state.
   */
  readonly stale: boolean;
}

export interface FailureEvent extends CallEvent {
  readonly error: unknown;
}

/**
 * A failure-rate or slow-call-rate policy reached its threshold: in `closed` (the breaker opens
 * right after) or over the probes of a `half-open` breaker (it reopens). resilience4j's
 * FailureRateExceeded / SlowCallRateExceeded.
 */
export interface RateExceededEvent {
  readonly breaker: string;
  readonly state: "closed" | "half-open";
  readonly kind: "failure" | "slow";
  /** hits / calls. */
  readonly rate: number;
  /** Failed (kind "failure") or slow (kind "slow") calls in the window. */
  readonly hits: number;
  readonly calls: number;
  readonly threshold: number;
  /** The window, e.g. "last 20 calls", "last 10000 ms" or "half-open probes". */
  readonly over: string;
  readonly at: number;
}

/** Events a breaker emits; listeners run synchronously, in the order they were added. */
export interface BreakerEventMap {
  stateChange: StateChangeEvent;
  rejected: RejectionInfo;
  success: CallEvent;
  failure: FailureEvent;
  rateExceeded: RateExceededEvent;
}

export type BreakerEventType = keyof BreakerEventMap;
export type Listener<K extends BreakerEventType> = (event: BreakerEventMap[K]) => void;

/** Minimal typed listener sets. A throwing listener is reported asynchronously, never to the caller. */
export class Emitter {
  readonly stateChange = new Set<Listener<"stateChange">>();
  readonly rejected = new Set<Listener<"rejected">>();
  readonly success = new Set<Listener<"success">>();
  readonly failure = new Set<Listener<"failure">>();
  readonly rateExceeded = new Set<Listener<"rateExceeded">>();

  emit<K extends BreakerEventType>(type: K, event: BreakerEventMap[K]): void {
    for (const listener of this[type] as Set<Listener<K>>) {
      try {
        listener(event);
      } catch (error) {
        queueMicrotask(() => {
          throw error;
        });
      }
    }
  }
}
