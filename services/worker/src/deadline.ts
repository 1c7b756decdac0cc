import { setTimeout as delay } from "node:timers/promises";
import { Code, ConnectError, type HandlerContext } from "@connectrpc/connect";

/** The time a handler's work may take. */
export interface CallTime {
  /** Aborts when the call is cancelled or its deadline (given or applied) passes. */
  readonly signal: AbortSignal;
  /** Milliseconds left before the deadline. */
  remainingMs(): number;
  /** Call when the handler's work is done: stops the timer, if one was set. */
  release(): void;
}

const noop = () => {};

/**
 * Gives a call that came without a timeout the server's maximum as its deadline: when
 * `maxTimeoutMs` passes, `signal` aborts with DeadlineExceeded, so the work stops. connect
 * applies its `maxTimeoutMs` only to timeouts a client asks for (it refuses larger ones);
 * without this, a call with no Connect-Timeout-Ms (or grpc-timeout) would run for as long as
 * its work takes. A call with a timeout keeps it: connect ends it at its deadline.
 */
export function applyMaxTimeout(ctx: HandlerContext, maxTimeoutMs: number): CallTime {
  if (ctx.timeoutMs() !== undefined) {
    return { signal: ctx.signal, remainingMs: () => ctx.timeoutMs() ?? 0, release: noop };
  }
  const end = Date.now() + maxTimeoutMs;
  const expiry = new AbortController();
  const timer = setTimeout(
    () =>
      expiry.abort(
        new ConnectError(
          `the call came without a timeout and ran into this server's --max-timeout-ms of ${maxTimeoutMs} ms; ask for less work or set a shorter timeout`,
          Code.DeadlineExceeded,
        ),
      ),
    maxTimeoutMs,
  );
  return {
    signal: AbortSignal.any([ctx.signal, expiry.signal]),
    remainingMs: () => end - Date.now(),
    release: () => clearTimeout(timer),
  };
}

/** Waits `ms`; if `signal` aborts first, rejects with its reason (a ConnectError keeps its code). */
export async function sleep(ms: number, signal: AbortSignal): Promise<void> {
  try {
    await delay(ms, undefined, { signal });
  } catch (e) {
    throw signal.aborted ? signal.reason : e;
  }
}
