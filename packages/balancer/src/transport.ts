import type {
  DescMessage,
  DescMethodStreaming,
  DescMethodUnary,
  MessageInitShape,
} from "@bufbuild/protobuf";
import { MethodOptions_IdempotencyLevel } from "@bufbuild/protobuf/wkt";
import {
  Code,
  ConnectError,
  type ContextValues,
  createContextValues,
  type Interceptor,
  type StreamRequest,
  type StreamResponse,
  type Transport,
  type UnaryRequest,
  type UnaryResponse,
} from "@connectrpc/connect";
import { createMethodUrl, runStreamingCall, runUnaryCall } from "@connectrpc/connect/protocol";
import {
  createConnectTransport,
  createGrpcTransport,
  type Http2SessionOptions,
} from "@connectrpc/connect-node";
import type { MeterProvider } from "@opentelemetry/api";
import { type Clock, systemClock } from "@quartet/determinism";
import type { Endpoint } from "./endpoint.ts";
import { hashKey } from "./hash.ts";
import { ActiveHealthCheck, type HealthCheckOptions } from "./health/active.ts";
import type { OutlierDetectionOptions } from "./health/outlier.ts";
import { registerMetrics } from "./metrics.ts";
import { createPicker, type PickerOptions } from "./pickers/index.ts";
import type { Picker, PickerKind } from "./pickers/picker.ts";
import { EndpointPool, type EndpointStats, type Lease } from "./pool.ts";
import type { Resolver } from "./resolver.ts";
import { EndpointSession, requestNotSent } from "./session.ts";

type HeadersInit = ConstructorParameters<typeof Headers>[0];

/** Where a hashing picker takes a call's key from. */
export type HashKeySource =
  | string
  | ((req: UnaryRequest | StreamRequest) => string | Uint8Array | undefined);

export interface RetryOptions {
  /** Attempts per call, first one included (default 3). Each retry goes to another endpoint. */
  maxAttempts?: number;
}

export interface BalancedTransportOptions {
  /** Where endpoints come from: `staticResolver([...])` or any dynamic `Resolver`. */
  resolver: Resolver;
  /** A picker or a built-in picker's name (default "round_robin"). */
  picker?: Picker | PickerKind;
  /** Options for a picker given by name (seeded `random`, `replicas`, `epsilon`...). */
  pickerOptions?: PickerOptions;
  /** Wire protocol to the endpoints (default "connect"). */
  protocol?: "connect" | "grpc";
  /** Default "2": one multiplexed HTTP/2 session per endpoint. */
  httpVersion?: "2" | "1.1";
  /** Binary Protobuf (default) or JSON on the wire. */
  useBinaryFormat?: boolean;
  /** Keepalive and idle settings of each endpoint's HTTP/2 session. */
  http2?: Http2SessionOptions;
  /**
   * For hashing pickers: the request header whose value is the key, or a function of the
   * request. Calls without a key are placed at random.
   */
  hashKey?: HashKeySource;
  /** Retry policy; `false` sends every call once. */
  retry?: RetryOptions | false;
  /** Applied once per call, around all its attempts (tracing, deadlines, auth...). */
  interceptors?: Interceptor[];
  /** Active grpc.health.v1 checks of every endpoint; `false` turns them off. */
  healthCheck?: HealthCheckOptions | false;
  /** Passive outlier detection; `false` turns it off. */
  outlierDetection?: OutlierDetectionOptions | false;
  /** Share of healthy endpoints under which health is ignored (default 0.5). */
  panicThreshold?: number;
  /** Applied when a call gives no timeout. */
  defaultTimeoutMs?: number;
  /** Metrics go to this provider (default: the global one). */
  meterProvider?: MeterProvider;
  /** Names this balancer in metrics and in the URL interceptors see (default "balanced"). */
  name?: string;
  clock?: Clock;
}

/** A Connect `Transport` that spreads calls over endpoints. */
export interface BalancedTransport extends Transport {
  readonly pool: EndpointPool;
  /** Per-endpoint figures: in-flight, total, failures, latency EWMA, health. */
  stats(): EndpointStats[];
  /** Stops health checks, resolver updates and metrics, and closes every connection. */
  close(): Promise<void>;
}

interface Channel {
  readonly transport: Transport;
  readonly session: EndpointSession | undefined;
  health: ActiveHealthCheck | undefined;
  draining: boolean;
}

/**
 * Creates a client-side load-balancing Connect transport. Each call runs the interceptors
 * once, then picks an endpoint (by the picker, skipping unhealthy and ejected ones), and sends
 * the call through that endpoint's own connect-node transport, which holds one HTTP/2 session.
 * A call failing with Unavailable (or losing its connection) is retried on another endpoint
 * when its method is idempotent (`NO_SIDE_EFFECTS` or `IDEMPOTENT`) or when the request
 * provably never left this process. Deadlines are kept: every attempt gets only what remains.
 */
export function createBalancedTransport(options: BalancedTransportOptions): BalancedTransport {
  const clock = options.clock ?? systemClock;
  const protocol = options.protocol ?? "connect";
  const httpVersion = options.httpVersion ?? "2";
  const useBinaryFormat = options.useBinaryFormat ?? true;
  const interceptors = options.interceptors ?? [];
  const maxAttempts = options.retry === false ? 1 : (options.retry?.maxAttempts ?? 3);
  if (!Number.isInteger(maxAttempts) || maxAttempts < 1)
    throw new RangeError(`retry.maxAttempts must be an integer >= 1, got ${maxAttempts}`);
  const name = options.name ?? "balanced";
  const baseUrl = `http://${name}`;
  const picker =
    typeof options.picker === "object"
      ? options.picker
      : createPicker(options.picker ?? "round_robin", options.pickerOptions);
  const keyOf = hashKeyReader(options.hashKey);
  const channels = new Map<Endpoint, Channel>();

  const openChannel = (endpoint: Endpoint): Channel => {
    const session =
      httpVersion === "2" ? new EndpointSession(endpoint.address, options.http2) : undefined;
    const common = { baseUrl: endpoint.address, useBinaryFormat };
    const nodeOptions = session
      ? ({ ...common, httpVersion: "2", sessionManager: session } as const)
      : ({ ...common, httpVersion: "1.1" } as const);
    const transport =
      protocol === "grpc" ? createGrpcTransport(nodeOptions) : createConnectTransport(nodeOptions);
    return { transport, session, health: undefined, draining: false };
  };
  const closeChannel = (endpoint: Endpoint, channel: Channel) => {
    channels.delete(endpoint);
    void channel.health?.stop();
    channel.session?.close();
  };

  const pool = new EndpointPool({
    picker,
    panicThreshold: options.panicThreshold,
    outlierDetection: options.outlierDetection,
    clock,
    onAdded(endpoint) {
      const channel = openChannel(endpoint);
      channels.set(endpoint, channel);
      if (options.healthCheck !== false) {
        channel.health = new ActiveHealthCheck(
          channel.transport,
          options.healthCheck ?? {},
          clock,
          (serving, reason) => pool.setServing(endpoint, serving, reason),
        );
        channel.health.start();
      }
    },
    onRemoved(endpoint) {
      const channel = channels.get(endpoint);
      if (!channel) return;
      void channel.health?.stop();
      channel.health = undefined;
      // Calls already running keep their connection; it closes when the last one ends.
      channel.draining = true;
      if (endpoint.inFlight === 0) closeChannel(endpoint, channel);
    },
  });

  const release = (lease: Lease, error?: unknown, failed = error !== undefined) => {
    pool.release(lease, error, failed);
    const channel = channels.get(lease.endpoint);
    if (channel?.draining && lease.endpoint.inFlight === 0) closeChannel(lease.endpoint, channel);
  };

  const noEndpoint = (method: { parent: { typeName: string }; name: string }, last: unknown) => {
    if (last !== undefined) return last;
    const total = pool.endpoints().length;
    return new ConnectError(
      total === 0
        ? `${name}: no endpoints for ${method.parent.typeName}/${method.name}; the resolver has given none`
        : `${name}: no endpoint can take ${method.parent.typeName}/${method.name} now (${total} known, all unhealthy, ejected or already tried)`,
      Code.Unavailable,
    );
  };

  const unsubscribe = options.resolver.subscribe((list) => pool.setEndpoints(list));
  const metrics = registerMetrics(name, pool, options.meterProvider);

  /**
   * Sends a call on a picked endpoint, and on others while `retryable` allows it after a
   * failure. `send` owns the lease once it succeeds (a unary call releases it at once, a
   * stream when it ends); on a failure the lease is released here.
   */
  async function sendWithRetries<R>(
    method: { parent: { typeName: string }; name: string },
    hash: number | undefined,
    signal: AbortSignal | undefined,
    send: (channel: Channel, lease: Lease) => Promise<R>,
    retryable: (outcome: FailureOutcome) => boolean,
  ): Promise<R> {
    // Allocated only when a call is retried.
    let tried: Set<Endpoint> | undefined;
    let last: unknown;
    for (let attempt = 1; ; attempt++) {
      const lease = pool.pick(hash, tried);
      if (!lease) throw noEndpoint(method, last);
      const channel = channels.get(lease.endpoint);
      if (!channel) {
        release(lease);
        throw new ConnectError(`${name}: balancer closed`, Code.Unavailable);
      }
      try {
        return await send(channel, lease);
      } catch (e) {
        const callerGaveUp = signal?.aborted === true;
        const outcome = classifyFailure(e, callerGaveUp, lease.endpoint);
        release(lease, outcome.error, !callerGaveUp);
        if (callerGaveUp || attempt >= maxAttempts || !retryable(outcome)) throw outcome.error;
        last = outcome.error;
        tried ??= new Set();
        tried.add(lease.endpoint);
      }
    }
  }

  /** Sends a unary call, retrying on other endpoints as the policy allows. */
  function attemptUnary<I extends DescMessage, O extends DescMessage>(
    method: DescMethodUnary<I, O>,
    signal: AbortSignal | undefined,
    deadline: number | undefined,
    header: HeadersInit | undefined,
    message: MessageInitShape<I>,
    contextValues: ContextValues | undefined,
    hash: number | undefined,
  ): Promise<UnaryResponse<I, O>> {
    const retrySafe = isIdempotent(method);
    return sendWithRetries(
      method,
      hash,
      signal,
      async (channel, lease) => {
        const res = await channel.transport.unary(
          method,
          signal,
          remaining(deadline, clock),
          header,
          message,
          contextValues,
        );
        release(lease);
        return res;
      },
      (outcome) => outcome.notSent || (retrySafe && outcome.error.code === Code.Unavailable),
    );
  }

  // Not async: with nothing to run around the attempts it hands back attemptUnary's promise
  // as it is (one promise and one microtask fewer per call); attemptUnary never throws.
  function unary<I extends DescMessage, O extends DescMessage>(
    method: DescMethodUnary<I, O>,
    signal: AbortSignal | undefined,
    timeoutMs: number | undefined,
    header: HeadersInit | undefined,
    input: MessageInitShape<I>,
    contextValues?: ContextValues,
  ): Promise<UnaryResponse<I, O>> {
    const timeout = normalizeTimeout(timeoutMs, options.defaultTimeoutMs);
    if (interceptors.length === 0 && !(picker.hashing && options.hashKey !== undefined)) {
      // The endpoint transport handles signal and deadline.
      const deadline = timeout === undefined ? undefined : clock.now() + timeout;
      return attemptUnary(method, signal, deadline, header, input, contextValues, undefined);
    }
    return interceptedUnary(method, signal, timeout, header, input, contextValues);
  }

  /** A unary call through the interceptors; async, so a bad header init rejects the call. */
  async function interceptedUnary<I extends DescMessage, O extends DescMessage>(
    method: DescMethodUnary<I, O>,
    signal: AbortSignal | undefined,
    timeout: number | undefined,
    header: HeadersInit | undefined,
    input: MessageInitShape<I>,
    contextValues: ContextValues | undefined,
  ): Promise<UnaryResponse<I, O>> {
    const deadline = timeout === undefined ? undefined : clock.now() + timeout;
    return runUnaryCall<I, O>({
      interceptors,
      signal,
      timeoutMs: timeout,
      req: {
        stream: false,
        service: method.parent,
        method,
        requestMethod: "POST",
        url: createMethodUrl(baseUrl, method),
        header: requestHeader(header, protocol, useBinaryFormat, false),
        contextValues: contextValues ?? createContextValues(),
        message: input,
      },
      next: (req) =>
        attemptUnary(
          method,
          req.signal,
          deadline,
          req.header,
          req.message,
          req.contextValues,
          picker.hashing ? keyOf(req) : undefined,
        ),
    });
  }

  async function stream<I extends DescMessage, O extends DescMessage>(
    method: DescMethodStreaming<I, O>,
    signal: AbortSignal | undefined,
    timeoutMs: number | undefined,
    header: HeadersInit | undefined,
    input: AsyncIterable<MessageInitShape<I>>,
    contextValues?: ContextValues,
  ): Promise<StreamResponse<I, O>> {
    const timeout = normalizeTimeout(timeoutMs, options.defaultTimeoutMs);
    const deadline = timeout === undefined ? undefined : clock.now() + timeout;
    return runStreamingCall<I, O>({
      interceptors,
      signal,
      timeoutMs: timeout,
      req: {
        stream: true,
        service: method.parent,
        method,
        requestMethod: "POST",
        url: createMethodUrl(baseUrl, method),
        header: requestHeader(header, protocol, useBinaryFormat, true),
        contextValues: contextValues ?? createContextValues(),
        message: input,
      },
      next: (req) => {
        // A stream can be retried only while none of its input has been read.
        const input = new TrackedInput(req.message);
        return sendWithRetries(
          method,
          picker.hashing ? keyOf(req) : undefined,
          req.signal,
          async (channel, lease) => {
            const res = await channel.transport.stream(
              method,
              req.signal,
              remaining(deadline, clock),
              req.header,
              input,
              req.contextValues,
            );
            return { ...res, message: releaseOnEnd(res.message, lease, req.signal, release) };
          },
          (outcome) => outcome.notSent && !input.pulled,
        );
      },
    });
  }

  return {
    pool,
    unary,
    stream,
    stats: () => pool.stats(),
    async close() {
      unsubscribe();
      metrics.unregister();
      pool.close();
      const stopping: Promise<void>[] = [];
      for (const [endpoint, channel] of [...channels]) {
        if (channel.health) stopping.push(channel.health.stop());
        closeChannel(endpoint, channel);
      }
      await Promise.all(stopping);
    },
  };
}

function isIdempotent(method: { idempotency: MethodOptions_IdempotencyLevel }): boolean {
  return (
    method.idempotency === MethodOptions_IdempotencyLevel.NO_SIDE_EFFECTS ||
    method.idempotency === MethodOptions_IdempotencyLevel.IDEMPOTENT
  );
}

function normalizeTimeout(timeoutMs: number | undefined, fallback: number | undefined) {
  const t = timeoutMs ?? fallback;
  return t === undefined || t <= 0 ? undefined : t;
}

function remaining(deadline: number | undefined, clock: Clock): number | undefined {
  // At least 1 ms: the call's own deadline signal reports expiry as DeadlineExceeded.
  return deadline === undefined ? undefined : Math.max(1, deadline - clock.now());
}

/** The content type the endpoint transport will send, set early so interceptors see it. */
function requestHeader(
  init: HeadersInit | undefined,
  protocol: "connect" | "grpc",
  binary: boolean,
  stream: boolean,
): Headers {
  const header = new Headers(init);
  const codec = binary ? "proto" : "json";
  header.set(
    "content-type",
    protocol === "grpc"
      ? `application/grpc+${codec}`
      : stream
        ? `application/connect+${codec}`
        : `application/${codec}`,
  );
  return header;
}

function hashKeyReader(
  source: HashKeySource | undefined,
): (req: UnaryRequest | StreamRequest) => number | undefined {
  if (source === undefined) return () => undefined;
  if (typeof source === "string") {
    const name = source.toLowerCase();
    return (req) => {
      const value = req.header.get(name);
      return value === null ? undefined : hashKey(value);
    };
  }
  return (req) => {
    const key = source(req);
    return key === undefined ? undefined : hashKey(key);
  };
}

interface FailureOutcome {
  error: ConnectError;
  /** The request provably never reached the server. */
  notSent: boolean;
}

/**
 * Normalises an attempt's error. connect-node reports a connection that died under a call as
 * Canceled or Aborted (an HTTP/2 stream reset); when the caller did not cancel, that is the
 * endpoint going away, so it becomes Unavailable, as gRPC reports it.
 */
function classifyFailure(
  reason: unknown,
  callerGaveUp: boolean,
  endpoint: Endpoint,
): FailureOutcome {
  const error = ConnectError.from(reason);
  if (callerGaveUp) return { error, notSent: false };
  const refused = error.code === Code.Unavailable && error.rawMessage.includes("REFUSED_STREAM");
  const notSent = requestNotSent(error) || refused;
  if (!error.isWireError && (error.code === Code.Canceled || error.code === Code.Aborted)) {
    return {
      error: new ConnectError(
        `connection to ${endpoint.address} lost: ${error.rawMessage}`,
        Code.Unavailable,
        error.metadata,
        undefined,
        error,
      ),
      notSent,
    };
  }
  return { error, notSent };
}

/** Wraps a request stream to know whether any of it was read. */
class TrackedInput<T> implements AsyncIterable<T> {
  pulled = false;
  readonly #source: AsyncIterable<T>;
  constructor(source: AsyncIterable<T>) {
    this.#source = source;
  }
  [Symbol.asyncIterator](): AsyncIterator<T> {
    const it = this.#source[Symbol.asyncIterator]();
    return {
      next: (value?: unknown) => {
        this.pulled = true;
        return it.next(value as undefined);
      },
      return: it.return ? (value?: unknown) => it.return!(value as undefined) : undefined,
      throw: it.throw ? (e?: unknown) => it.throw!(e) : undefined,
    };
  }
}

/**
 * Ends a streaming call's lease when its response stream ends or fails, or when the call's
 * signal aborts first (the consumer stopped reading, or the call was cancelled): the last
 * says nothing about the endpoint.
 */
function releaseOnEnd<T>(
  source: AsyncIterable<T>,
  lease: Lease,
  signal: AbortSignal,
  release: (lease: Lease, error?: unknown, failed?: boolean) => void,
): AsyncIterable<T> {
  let ended = false;
  const end = (error?: unknown, failed?: boolean) => {
    if (ended) return;
    ended = true;
    signal.removeEventListener("abort", onAbort);
    release(lease, error, failed);
  };
  const onAbort = () => end(new ConnectError("stream ended by the caller", Code.Canceled), false);
  if (signal.aborted) onAbort();
  else signal.addEventListener("abort", onAbort);
  return {
    async *[Symbol.asyncIterator]() {
      try {
        yield* source;
        end();
      } catch (e) {
        const outcome = classifyFailure(e, signal.aborted, lease.endpoint);
        end(outcome.error, !signal.aborted);
        throw outcome.error;
      } finally {
        if (!ended) end(new ConnectError("stream ended by the caller", Code.Canceled), false);
      }
    },
  };
}
