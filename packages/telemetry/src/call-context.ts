import {
  type Context,
  context,
  createContextKey,
  INVALID_SPAN_CONTEXT,
  propagation,
  ROOT_CONTEXT,
  type Span,
  trace,
} from "@opentelemetry/api";
import { AsyncLocalStorageContextManager } from "@opentelemetry/context-async-hooks";
import { headersGetter } from "./headers.ts";
import { type RpcSystem, requestTimeoutMs } from "./rpc-semantics.ts";

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
 * One handler call, and the OTel Context it runs in: the caller's context (W3C trace
 * context and baggage from the request headers), the call's span (if it has one) as the
 * active span, and the call itself under {@link CALL_CONTEXT_KEY}.
 *
 * It is one object per call, and it reads the caller's context and the timeout from the
 * request headers only when something asks for them (an outbound call, a log line): most
 * calls never do, and this runs on every request, where each header read and each
 * `setValue` (a copy of the parent's Map and three closures) shows up in throughput.
 */
export class HandlerCallContext implements Context, CallContext {
  readonly signal: AbortSignal;
  readonly procedure: string;
  readonly #header: Headers;
  readonly #system: RpcSystem;
  readonly #arrivedAt: number;
  readonly #span: Span | undefined;
  #caller: Context | undefined;
  #deadline: number | undefined | null = null;

  /**
   * @param arrivedAt `performance.now()` when the request arrived; its timeout counts from there.
   * @param caller the caller's context, if already extracted from `header`.
   */
  constructor(
    header: Headers,
    system: RpcSystem,
    arrivedAt: number,
    signal: AbortSignal,
    procedure: string,
    caller: Context | undefined,
    span: Span | undefined,
  ) {
    this.#header = header;
    this.#system = system;
    this.#arrivedAt = arrivedAt;
    this.signal = signal;
    this.procedure = procedure;
    this.#caller = caller;
    this.#span = span;
  }

  /** Deadline as epoch ms, from the request's timeout header, if it has one. */
  get deadline(): number | undefined {
    if (this.#deadline === null) {
      const timeoutMs = requestTimeoutMs(this.#header, this.#system);
      // Elapsed time on the monotonic clock, so a wall-clock step cannot move the deadline.
      const arrivedAtEpochMs = Date.now() - (performance.now() - this.#arrivedAt);
      this.#deadline = timeoutMs === undefined ? undefined : arrivedAtEpochMs + timeoutMs;
    }
    return this.#deadline;
  }

  getValue(key: symbol): unknown {
    if (key === CALL_CONTEXT_KEY) return this;
    if (key === SPAN_KEY && this.#span !== undefined) return this.#span;
    this.#caller ??= callerContext(this.#header);
    return this.#caller.getValue(key);
  }

  setValue(key: symbol, value: unknown): Context {
    return new ContextEntry(this, key, value);
  }

  deleteValue(key: symbol): Context {
    return new ContextEntry(this, key, undefined);
  }
}

/** The W3C trace context and baggage a request carries (the global propagator's fields). */
export function callerContext(header: Headers): Context {
  return propagation.extract(ROOT_CONTEXT, header, headersGetter);
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
