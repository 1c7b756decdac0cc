import { context, createContextKey, ROOT_CONTEXT } from "@opentelemetry/api";
import { AsyncLocalStorageContextManager } from "@opentelemetry/context-async-hooks";

/** What an outbound call needs to know about the handler call it is made from. */
export interface CallContext {
  /** Aborts when the handler call ends, is cancelled by its caller, or runs out of time. */
  readonly signal: AbortSignal;
  /** Deadline of the handler call as epoch milliseconds, if its caller set a timeout. */
  readonly deadline: number | undefined;
  /** The handler's procedure, `package.Service/Method`. */
  readonly procedure: string;
}

/**
 * The handler call lives in the OTel Context next to the active span, so one
 * AsyncLocalStorage carries both across every await in the handler.
 */
export const CALL_CONTEXT_KEY = createContextKey("quartet.telemetry.call");

/** The current handler call (deadline as epoch ms, its abort signal), if any. */
export function currentCall(): CallContext | undefined {
  return context.active().getValue(CALL_CONTEXT_KEY) as CallContext | undefined;
}

const PROBE_KEY = createContextKey("quartet.telemetry.probe");

/**
 * Registers an AsyncLocalStorage context manager unless a working one is already
 * registered. Deadline and cancellation propagation depend on it even when the
 * OpenTelemetry SDK is disabled or was never started.
 */
export function ensureContextManager(): void {
  const probe = ROOT_CONTEXT.setValue(PROBE_KEY, true);
  const works = context.with(probe, () => context.active().getValue(PROBE_KEY) === true);
  if (!works) {
    context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  }
}
