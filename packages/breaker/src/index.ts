// Re-exported for convenience; the one definition lives in @quartet/determinism.
export { type Clock, type Random, seededRandom, systemClock } from "@quartet/determinism";
export type { BackoffOptions } from "./backoff.ts";
export {
  type BreakerHealth,
  type BreakerMetrics,
  type BreakerOptions,
  CircuitBreaker,
  type ExecuteOptions,
  type Permit,
} from "./breaker.ts";
export { type Classifier, connectClassifier, failureCodes, type Outcome } from "./classifier.ts";
export {
  BreakerRejectedError,
  describeRejection,
  isBreakerRejection,
  type RejectionInfo,
} from "./errors.ts";
export type {
  BreakerEventMap,
  BreakerEventType,
  CallEvent,
  FailureEvent,
  Listener,
  RateExceededEvent,
  StateChangeEvent,
} from "./events.ts";
export {
  type BreakerInterceptor,
  type BreakerInterceptorOptions,
  type BreakerKey,
  createBreakerInterceptor,
  type EvictionOptions,
  stateValues,
} from "./interceptor.ts";
export {
  consecutiveFailures,
  failureRate,
  type RatePolicyOptions,
  type RateReading,
  type SlowCallRateOptions,
  slowCallRate,
  type TripPolicy,
  type TripPolicyFactory,
} from "./policies.ts";
export type { BreakerState } from "./state.ts";
export { countWindow, timeWindow, type WindowSpec } from "./window.ts";
