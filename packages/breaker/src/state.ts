/**
 * - `closed`: calls run; the trip policies watch them.
 * - `open`: calls are rejected until the reset timeout has passed, then the breaker is half-open.
 * - `half-open`: up to `maxProbes` calls run at once as probes; `successesToClose` successes
 *   close the breaker, any failure reopens it (with a longer timeout under backoff).
 * - `isolated`: forced open by `isolate()`; everything is rejected until `reset()`.
 * - `disabled`: everything runs and is counted in metrics, but the state never changes until `reset()`.
 */
export type BreakerState = "closed" | "open" | "half-open" | "isolated" | "disabled";
