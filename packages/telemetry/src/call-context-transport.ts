import type { DescMethod } from "@bufbuild/protobuf";
import { Code, ConnectError, type Transport } from "@connectrpc/connect";
import { type CallContext, currentCall, ensureContextManager } from "./call-context.ts";

/** Default time kept back from the handler's remaining budget for the reply to travel back. */
export const DEFAULT_MARGIN_MS = 5;

export interface CallContextOptions {
  /** Milliseconds kept back from the handler's remaining time. Default 5. */
  marginMs?: number;
  /**
   * The wrapped transport's `defaultTimeoutMs`, if it has one: a call without its own
   * timeout gets the smaller of this and the handler's remaining budget.
   */
  defaultTimeoutMs?: number;
}

/**
 * Wraps a Transport so that a call made inside a handler (see `currentCall()`):
 * - gets at most the handler's remaining deadline minus `marginMs` as its timeout;
 * - fails fast with DeadlineExceeded, without being sent, when that budget is spent;
 * - is aborted when the handler's signal aborts (the caller cancelled, the deadline
 *   passed, or the handler finished), and fails fast if it already has.
 * Calls made outside a handler pass through unchanged. Works for every protocol,
 * because the Transport interface carries the timeout and signal separately.
 */
export function withCallContext(transport: Transport, options: CallContextOptions = {}): Transport {
  ensureContextManager();
  const marginMs = options.marginMs ?? DEFAULT_MARGIN_MS;
  const defaultTimeoutMs = options.defaultTimeoutMs;
  return {
    unary(method, signal, timeoutMs, header, input, contextValues) {
      const call = currentCall();
      if (call === undefined) {
        return transport.unary(method, signal, timeoutMs, header, input, contextValues);
      }
      const budget = budgetMs(call, method, timeoutMs ?? defaultTimeoutMs, marginMs);
      if (budget instanceof ConnectError) return Promise.reject(budget);
      const linked = linkSignals(signal, call.signal);
      return transport.unary(method, linked, budget, header, input, contextValues);
    },
    stream(method, signal, timeoutMs, header, input, contextValues) {
      const call = currentCall();
      if (call === undefined) {
        return transport.stream(method, signal, timeoutMs, header, input, contextValues);
      }
      const budget = budgetMs(call, method, timeoutMs ?? defaultTimeoutMs, marginMs);
      if (budget instanceof ConnectError) return Promise.reject(budget);
      const linked = linkSignals(signal, call.signal);
      return transport.stream(method, linked, budget, header, input, contextValues);
    },
  };
}

/**
 * The timeout for an outbound call: the smaller of the requested one and what the
 * handler has left, or an error when nothing is left or the handler was aborted.
 */
function budgetMs(
  call: CallContext,
  method: DescMethod,
  requestedMs: number | undefined,
  marginMs: number,
): number | undefined | ConnectError {
  if (call.signal.aborted) {
    const reason = ConnectError.from(call.signal.reason, Code.Canceled);
    return new ConnectError(
      `${outbound(method)} not sent: ${call.procedure} was aborted (${reason.rawMessage})`,
      reason.code === Code.DeadlineExceeded ? Code.DeadlineExceeded : Code.Canceled,
    );
  }
  // Transports treat a timeout <= 0 as "no timeout".
  const requested = requestedMs !== undefined && requestedMs > 0 ? requestedMs : undefined;
  if (call.deadline === undefined) return requested;
  const remaining = Math.floor(call.deadline - Date.now() - marginMs);
  if (remaining <= 0) {
    return new ConnectError(
      `${outbound(method)} not sent: the deadline of ${call.procedure} leaves no time for it ` +
        `(${Math.ceil(call.deadline - Date.now())} ms left, ${marginMs} ms margin)`,
      Code.DeadlineExceeded,
    );
  }
  return requested === undefined || requested > remaining ? remaining : requested;
}

function outbound(method: DescMethod): string {
  return `${method.parent.typeName}/${method.name}`;
}

function linkSignals(signal: AbortSignal | undefined, handlerSignal: AbortSignal): AbortSignal {
  return signal === undefined ? handlerSignal : AbortSignal.any([signal, handlerSignal]);
}
