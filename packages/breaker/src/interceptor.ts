import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import { type Attributes, type MeterProvider, metrics, trace } from "@opentelemetry/api";
import { type Clock, systemClock } from "@quartet/determinism";
import { type BreakerOptions, CircuitBreaker, type Permit } from "./breaker.ts";
import { BreakerRejectedError, type RejectionInfo } from "./errors.ts";
import type { BreakerState } from "./state.ts";

type AnyRequest = Parameters<Parameters<Interceptor>[0]>[0];

/** Which calls share a breaker. */
export type BreakerKey = "host" | "host+method" | ((request: AnyRequest) => string);

export interface BreakerInterceptorOptions {
  /** One breaker per host (default), per host and method, or per key your function returns. */
  key?: BreakerKey;
  /** Options of every breaker made (the name is the key). */
  breaker?: Omit<BreakerOptions, "name" | "clock" | "rejectionError">;
  /** Capture stack traces in rejection errors (costly; default false). */
  captureRejectionStack?: boolean;
  /** Clock shared by every breaker (only `now()` is read); default `systemClock`. */
  clock?: Pick<Clock, "now">;
  /** Where the breaker metrics go; default the global `@opentelemetry/api` meter provider. */
  meterProvider?: MeterProvider;
  /**
   * Forget per-key breakers that are not in use, so keys that come and go (hosts of a
   * discovery system, per-method keys) do not pile up. Only a closed breaker with no call in
   * flight is ever evicted: an open, half-open or isolated one stays, whatever its age or the
   * cap. Default: never evict.
   */
  evict?: EvictionOptions;
}

/** When the interceptor forgets a breaker. Time comes from the interceptor's `clock`. */
export interface EvictionOptions {
  /**
   * Evict a breaker no call has used for this many ms. Checked on calls (no timers), at most
   * once per `idleMs / 2`, so a breaker goes within 1.5 x `idleMs` of its last use if calls flow.
   */
  idleMs?: number;
  /**
   * Keep at most this many breakers: making one more evicts the least recently used evictable
   * ones first. When none is evictable (all open or busy) the cap is exceeded rather than a
   * failing target forgotten.
   */
  maxBreakers?: number;
}

/** A Connect client interceptor that also exposes its breakers, keyed by target. */
export interface BreakerInterceptor extends Interceptor {
  readonly breakers: ReadonlyMap<string, CircuitBreaker>;
}

/** Numeric encoding of states in the `quartet.breaker.state` gauge. */
export const stateValues: Readonly<Record<BreakerState, number>> = {
  closed: 0,
  "half-open": 1,
  open: 2,
  isolated: 3,
  disabled: 4,
};

/**
 * Guards every call of a Connect client with a circuit breaker per target. A rejected call
 * fails at once, before any network I/O, with `Code.Unavailable`, a message naming the
 * breaker and when it will next probe, and a `BreakerRejectedError` as `cause` (see
 * `isBreakerRejection`). Unary calls count when they settle; streaming calls when the
 * response stream ends.
 *
 * Telemetry: the observable gauge `quartet.breaker.state` (see `stateValues`), the observable
 * counter `quartet.breaker.calls` (attribute `outcome`: success, failure, ignored, rejected)
 * and the counter `quartet.breaker.transitions` (`from`, `to`), all with `breaker.target`;
 * every transition and rejection is also added as an event to the active span.
 */
export function createBreakerInterceptor(
  options: BreakerInterceptorOptions = {},
): BreakerInterceptor {
  const keyOf = keyFunction(options.key ?? "host");
  const breakers = new Map<string, CircuitBreaker>();
  const eviction = options.evict ? new Eviction(breakers, options.evict, options.clock) : undefined;
  const captureStack = options.captureRejectionStack === true;
  const meter = (options.meterProvider ?? metrics.getMeterProvider()).getMeter("@quartet/breaker");
  const transitions = meter.createCounter("quartet.breaker.transitions", {
    description: "Circuit breaker state transitions",
  });
  meter
    .createObservableGauge("quartet.breaker.state", {
      description: "Circuit breaker state: 0 closed, 1 half-open, 2 open, 3 isolated, 4 disabled",
    })
    .addCallback((result) => {
      for (const [target, breaker] of breakers)
        result.observe(stateValues[breaker.state], { "breaker.target": target });
    });
  meter
    .createObservableCounter("quartet.breaker.calls", {
      description: "Calls through the circuit breaker by outcome; rejected calls never ran",
    })
    .addCallback((result) => {
      for (const [target, breaker] of breakers) {
        const m = breaker.metrics();
        result.observe(m.successes, { "breaker.target": target, outcome: "success" });
        result.observe(m.failures, { "breaker.target": target, outcome: "failure" });
        result.observe(m.ignored, { "breaker.target": target, outcome: "ignored" });
        result.observe(m.rejections, { "breaker.target": target, outcome: "rejected" });
      }
    });

  const breakerFor = (target: string): CircuitBreaker => {
    let breaker = eviction ? eviction.use(target) : breakers.get(target);
    if (breaker !== undefined) return breaker;
    eviction?.makeRoom();
    breaker = new CircuitBreaker({
      ...options.breaker,
      name: target,
      ...(options.clock ? { clock: options.clock } : {}),
      rejectionError: (info) => rejectionToConnectError(info, captureStack),
    });
    breaker.on("stateChange", (event) => {
      const attributes: Attributes = {
        "breaker.target": target,
        "breaker.from": event.from,
        "breaker.to": event.to,
      };
      transitions.add(1, attributes);
      trace.getActiveSpan()?.addEvent("quartet.breaker.state_change", {
        ...attributes,
        "breaker.reason": event.reason,
        ...(event.nextProbeAt === null
          ? {}
          : { "breaker.next_probe_at": new Date(event.nextProbeAt).toISOString() }),
      });
    });
    breaker.on("rejected", (info) => {
      trace.getActiveSpan()?.addEvent("quartet.breaker.rejected", {
        "breaker.target": target,
        "breaker.state": info.state,
      });
    });
    breakers.set(target, breaker);
    return breaker;
  };

  const interceptor: Interceptor = (next) => (request) => {
    const breaker = breakerFor(keyOf(request));
    if (!request.stream) return breaker.execute(() => next(request), { signal: request.signal });
    let call: StreamCall;
    try {
      call = new StreamCall(breaker.acquire(), request.signal);
    } catch (error) {
      return Promise.reject(error);
    }
    return next(request).then(
      (response) => {
        if (!response.stream) {
          call.success();
          return response;
        }
        return { ...response, message: call.track(response.message) };
      },
      (error: unknown) => {
        call.failure(error);
        throw error;
      },
    );
  };
  return Object.assign(interceptor, { breakers: breakers as ReadonlyMap<string, CircuitBreaker> });
}

/**
 * Idle-TTL and LRU-cap eviction of the interceptor's breakers. Last use is kept per key; the map
 * keeps insertion order, and a use moves its key to the end, so the map's first evictable
 * entry is the least recently used one.
 */
class Eviction {
  readonly #breakers: Map<string, CircuitBreaker>;
  readonly #lastUsed = new Map<string, number>();
  readonly #idleMs: number;
  readonly #maxBreakers: number;
  readonly #clock: Pick<Clock, "now">;
  #nextSweepAt: number;

  constructor(
    breakers: Map<string, CircuitBreaker>,
    options: EvictionOptions,
    clock: Pick<Clock, "now"> = systemClock,
  ) {
    this.#breakers = breakers;
    this.#clock = clock;
    this.#idleMs = options.idleMs ?? Number.POSITIVE_INFINITY;
    this.#maxBreakers = options.maxBreakers ?? Number.POSITIVE_INFINITY;
    if (!(this.#idleMs > 0))
      throw new RangeError(`evict.idleMs must be a number of ms > 0, got ${options.idleMs}`);
    if (
      !(Number.isInteger(this.#maxBreakers) && this.#maxBreakers >= 1) &&
      options.maxBreakers !== undefined
    )
      throw new RangeError(`evict.maxBreakers must be an integer >= 1, got ${options.maxBreakers}`);
    this.#nextSweepAt = clock.now() + this.#idleMs / 2;
  }

  /** The breaker of `key`, if kept, marked as used now; sweeps idle breakers when due. */
  use(key: string): CircuitBreaker | undefined {
    const now = this.#clock.now();
    if (now >= this.#nextSweepAt) {
      this.#nextSweepAt = now + this.#idleMs / 2;
      for (const [k, last] of this.#lastUsed)
        if (now - last >= this.#idleMs && k !== key) this.#evictIfIdle(k);
    }
    this.#lastUsed.delete(key); // re-inserted below: the most recently used goes last
    this.#lastUsed.set(key, now);
    return this.#breakers.get(key);
  }

  /** Before a new breaker is added: evict least recently used ones while at the cap. */
  makeRoom(): void {
    if (this.#breakers.size < this.#maxBreakers) return;
    for (const key of this.#lastUsed.keys()) {
      if (this.#breakers.size < this.#maxBreakers) return;
      if (this.#breakers.has(key)) this.#evictIfIdle(key);
    }
  }

  #evictIfIdle(key: string): void {
    const breaker = this.#breakers.get(key);
    if (breaker === undefined) {
      this.#lastUsed.delete(key);
      return;
    }
    if (breaker.state !== "closed" || breaker.metrics().inFlight > 0) return;
    this.#breakers.delete(key);
    this.#lastUsed.delete(key);
  }
}

/** The interceptor's rejection: Unavailable, so callers and retry policies treat it like a down host. */
function rejectionToConnectError(info: RejectionInfo, captureStack: boolean): ConnectError {
  const metadata = new Headers({
    "quartet-breaker": info.breaker,
    "quartet-breaker-state": info.state,
  });
  if (info.nextProbeAt !== null)
    metadata.set("quartet-breaker-retry-after-ms", String(Math.max(0, info.nextProbeAt - info.at)));
  const cause = new BreakerRejectedError(info, { captureStack });
  const limit = Error.stackTraceLimit;
  if (!captureStack) Error.stackTraceLimit = 0;
  try {
    return new ConnectError(cause.message, Code.Unavailable, metadata, undefined, cause);
  } finally {
    Error.stackTraceLimit = limit;
  }
}

/**
 * Reports a streaming call's outcome exactly once: when the response stream ends or breaks, or
 * when the call's signal aborts first (a stream the client stops reading is only over for the
 * server once it is cancelled, which Connect does through the signal).
 */
class StreamCall {
  readonly #permit: Permit;
  readonly #signal: AbortSignal;
  #settled = false;
  readonly #onAbort = () => this.failure(this.#signal.reason);

  constructor(permit: Permit, signal: AbortSignal) {
    this.#permit = permit;
    this.#signal = signal;
    signal.addEventListener("abort", this.#onAbort);
  }

  success(): void {
    if (this.#settle()) this.#permit.success();
  }

  failure(error: unknown): void {
    if (this.#settle()) this.#permit.failure(error);
  }

  async *track<T>(messages: AsyncIterable<T>): AsyncGenerator<T> {
    try {
      yield* messages;
      this.success();
    } catch (error) {
      this.failure(error);
      throw error;
    } finally {
      // The reader stopped early (return()), which says nothing about the server.
      if (this.#settle()) this.#permit.ignore();
    }
  }

  #settle(): boolean {
    if (this.#settled) return false;
    this.#settled = true;
    this.#signal.removeEventListener("abort", this.#onAbort);
    return true;
  }
}

function keyFunction(key: BreakerKey): (request: AnyRequest) => string {
  if (typeof key === "function") return key;
  if (key === "host") return (request) => hostOf(request.url);
  if (key === "host+method")
    return (request) => `${hostOf(request.url)}/${request.service.typeName}/${request.method.name}`;
  throw new TypeError(`key must be "host", "host+method" or a function, got ${String(key)}`);
}

/** "http://127.0.0.1:7201/quartet.worker.v1.WorkerService/Compute" -> "127.0.0.1:7201", without a URL object per call. */
function hostOf(url: string): string {
  const scheme = url.indexOf("://");
  const start = scheme < 0 ? 0 : scheme + 3;
  const end = url.indexOf("/", start);
  return end < 0 ? url.slice(start) : url.slice(start, end);
}
