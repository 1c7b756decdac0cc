import {
  type Context,
  context,
  createContextKey,
  INVALID_SPAN_CONTEXT,
  ROOT_CONTEXT,
  type Span,
  trace,
} from "@opentelemetry/api";
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

/** A context that differs from its parent in one key (undefined: deleted). */
class ContextEntry implements Context {
  readonly #parent: Context;
  readonly #key: symbol;
  readonly #value: unknown;

  constructor(parent: Context, key: symbol, value: unknown) {
    this.#parent = parent;
    this.#key = key;
    this.#value = value;
  }

  getValue(key: symbol): unknown {
    return key === this.#key ? this.#value : this.#parent.getValue(key);
  }

  setValue(key: symbol, value: unknown): Context {
    return new ContextEntry(this, key, value);
  }

  deleteValue(key: symbol): Context {
    return new ContextEntry(this, key, undefined);
  }
}

/**
 * The key under which @opentelemetry/api keeps the active span. The API does not export
 * it; `trace.setSpan` tells it to a context that records the key it is given.
 */
const SPAN_KEY: symbol = (() => {
  let key: symbol | undefined;
  const recorder: Context = {
    getValue: () => undefined,
    setValue(k) {
      key = k;
      return recorder;
    },
    deleteValue: () => recorder,
  };
  trace.setSpan(recorder, trace.wrapSpanContext(INVALID_SPAN_CONTEXT));
  if (key === undefined) throw new Error("@opentelemetry/api: trace.setSpan set no context key");
  return key;
})();

/**
 * One handler call, and the OTel Context it runs in: the caller's context (trace, baggage)
 * with the call's span (if it has one) as the active span and the call itself under
 * {@link CALL_CONTEXT_KEY}. One object per call instead of `trace.setSpan(...)` and
 * `setValue(...)`, each of which copies the parent's Map and makes three closures
 * (BaseContext): this runs on every request, where allocations show up as GC time.
 */
export class HandlerCallContext extends ContextEntry implements CallContext {
  readonly signal: AbortSignal;
  readonly deadline: number | undefined;
  readonly procedure: string;

  constructor(
    parent: Context,
    span: Span | undefined,
    signal: AbortSignal,
    deadline: number | undefined,
    procedure: string,
  ) {
    super(parent, SPAN_KEY, span ?? parent.getValue(SPAN_KEY));
    this.signal = signal;
    this.deadline = deadline;
    this.procedure = procedure;
  }

  override getValue(key: symbol): unknown {
    return key === CALL_CONTEXT_KEY ? this : super.getValue(key);
  }
}

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
