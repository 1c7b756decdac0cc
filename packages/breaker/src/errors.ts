import { ConnectError } from "@connectrpc/connect";
import type { BreakerState } from "./state.ts";

/** Why a call was rejected without running. */
export interface RejectionInfo {
  /** The breaker's name (the target, for breakers made by the interceptor). */
  readonly breaker: string;
  /** `open`, `isolated`, or `half-open` when every probe permit is in use. */
  readonly state: BreakerState;
  /** When the rejection happened (ms since the epoch, from the breaker's clock). */
  readonly at: number;
  /**
   * When the next probe may run (ms since the epoch): the end of the open period, `at` for a
   * half-open breaker whose probes are busy, and null while isolated (until `reset()`).
   */
  readonly nextProbeAt: number | null;
}

/** The error a breaker rejects with when it does not let a call run. */
export class BreakerRejectedError extends Error implements RejectionInfo {
  override readonly name = "BreakerRejectedError";
  readonly breaker: string;
  readonly state: BreakerState;
  readonly at: number;
  readonly nextProbeAt: number | null;

  /**
   * Without `captureStack` no stack trace is captured: capturing one costs several times more
   * than the rest of a rejection, and the interesting stack is the caller's, not the breaker's.
   */
  constructor(info: RejectionInfo, options?: { captureStack?: boolean }) {
    const limit = Error.stackTraceLimit;
    if (options?.captureStack !== true) Error.stackTraceLimit = 0;
    try {
      super(describeRejection(info));
    } finally {
      Error.stackTraceLimit = limit;
    }
    this.breaker = info.breaker;
    this.state = info.state;
    this.at = info.at;
    this.nextProbeAt = info.nextProbeAt;
  }

  /** Milliseconds until the next probe may run (0 if due), or null while isolated. */
  get retryAfterMs(): number | null {
    return this.nextProbeAt === null ? null : Math.max(0, this.nextProbeAt - this.at);
  }
}

/** E.g. `circuit breaker "10.0.0.7:7201" is open; next probe at 2025-01-01T00:00:30.000Z (in 30000 ms)`. */
export function describeRejection(info: RejectionInfo): string {
  const name = `circuit breaker "${info.breaker}"`;
  if (info.state === "isolated") return `${name} is isolated (forced open) until it is reset`;
  if (info.state === "half-open")
    return `${name} is half-open and all probe permits are in use; the next probe runs when one finishes`;
  const next = info.nextProbeAt ?? info.at;
  return `${name} is open; next probe at ${isoTime(next)} (in ${Math.max(0, next - info.at)} ms)`;
}

// Every rejection of one open period names the same probe time: format it once.
let lastIsoMs = Number.NaN;
let lastIso = "";
function isoTime(ms: number): string {
  if (ms !== lastIsoMs) {
    lastIso = new Date(ms).toISOString();
    lastIsoMs = ms;
  }
  return lastIso;
}

/**
 * True for a breaker rejection: a `BreakerRejectedError`, or a `ConnectError` (as thrown by
 * the interceptor) whose cause is one. Use it to tell "not attempted" apart from a failed call.
 */
export function isBreakerRejection(error: unknown): boolean {
  return (
    error instanceof BreakerRejectedError ||
    (error instanceof ConnectError && error.cause instanceof BreakerRejectedError)
  );
}
