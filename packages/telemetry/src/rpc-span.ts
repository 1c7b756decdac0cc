import { Code, ConnectError } from "@connectrpc/connect";
import {
  type Context,
  context,
  type Span,
  type SpanKind,
  SpanStatusCode,
} from "@opentelemetry/api";
import { getTracer, noSpan, spansOn } from "./instruments.ts";
import { CODE_NAMES, durationSeries, type MethodInfo, RpcSystem } from "./rpc-semantics.ts";
import type { CallAdmission } from "./server-interceptor.ts";

/**
 * Codes that mark a server span as failed; the others are the caller's problem
 * (OTel RPC semantic conventions). Client spans fail on every non-OK code.
 */
const SERVER_ERROR_CODES: ReadonlySet<number> = new Set([
  Code.Unknown,
  Code.DeadlineExceeded,
  Code.Unimplemented,
  Code.Internal,
  Code.Unavailable,
  Code.DataLoss,
]);

/**
 * Starts the span of one call in `parent`. When spans are off it returns the shared no-op
 * span instead, and callers keep `parent` as it is, so incoming trace context flows on.
 */
export function startRpcSpan(
  info: MethodInfo,
  system: RpcSystem,
  kind: SpanKind,
  parent: Context,
): Span {
  if (!spansOn()) return noSpan;
  return getTracer().startSpan(
    info.procedure,
    { kind, attributes: info.spanAttributes[system] },
    parent,
  );
}

/** Records the duration metric, sets the code attributes and status, and ends the span. */
export function finishRpc(
  span: Span,
  isServer: boolean,
  info: MethodInfo,
  system: RpcSystem,
  startMs: number,
  code: number,
  message: string | undefined,
): void {
  durationSeries(info, isServer, system, code).record(performance.now() - startMs);
  if (span.isRecording()) {
    if (system === RpcSystem.grpc) {
      span.setAttribute("rpc.grpc.status_code", code);
    } else if (code !== 0) {
      span.setAttribute("rpc.connect_rpc.error_code", CODE_NAMES[code] ?? "unknown");
    }
    if (code !== 0 && (!isServer || SERVER_ERROR_CODES.has(code))) {
      span.setStatus({ code: SpanStatusCode.ERROR, message });
    }
  }
  span.end();
}

/**
 * The response messages of a streaming call, ending its span when the stream ends:
 * on completion, on error, when the consumer stops early, or when the call's signal
 * aborts (cancel, deadline) while the stream is still open. On the server, every step
 * runs inside the call's context so the handler's generator sees its span and call.
 */
export class TracedStream<T> implements AsyncIterableIterator<T> {
  readonly #source: AsyncIterable<T>;
  readonly #ctx: Context | undefined;
  readonly #span: Span;
  readonly #isServer: boolean;
  readonly #info: MethodInfo;
  readonly #system: RpcSystem;
  readonly #startMs: number;
  readonly #signal: AbortSignal;
  #iterator: AsyncIterator<T> | undefined;
  readonly #admission: Pick<CallAdmission, "release"> | undefined;
  #ended = false;

  constructor(
    source: AsyncIterable<T>,
    ctx: Context | undefined,
    span: Span,
    isServer: boolean,
    info: MethodInfo,
    system: RpcSystem,
    startMs: number,
    signal: AbortSignal,
    /** Released when the stream ends: the server call admitted it. */
    admission?: Pick<CallAdmission, "release">,
  ) {
    this.#source = source;
    this.#ctx = ctx;
    this.#span = span;
    this.#isServer = isServer;
    this.#info = info;
    this.#system = system;
    this.#startMs = startMs;
    this.#signal = signal;
    this.#admission = admission;
    if (signal.aborted) {
      this.handleEvent();
    } else {
      signal.addEventListener("abort", this);
    }
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  async next(): Promise<IteratorResult<T>> {
    this.#iterator ??= this.#source[Symbol.asyncIterator]();
    const iterator = this.#iterator;
    try {
      const result =
        this.#ctx === undefined
          ? await iterator.next()
          : await context.with(this.#ctx, iterator.next, iterator);
      if (result.done === true) this.#finish(0, undefined);
      return result;
    } catch (error) {
      this.#finishWithError(error);
      throw error;
    }
  }

  async return(value?: unknown): Promise<IteratorResult<T>> {
    this.#finish(Code.Canceled, "the stream was closed before its end");
    const result = await this.#iterator?.return?.(value);
    return result ?? { done: true, value: undefined };
  }

  async throw(error?: unknown): Promise<IteratorResult<T>> {
    this.#finishWithError(error);
    if (this.#iterator?.throw === undefined) throw error;
    return await this.#iterator.throw(error);
  }

  /** The call's signal aborted: the stream ends with the abort reason. */
  handleEvent(): void {
    this.#finishWithError(ConnectError.from(this.#signal.reason, Code.Canceled));
  }

  #finishWithError(error: unknown): void {
    const connectError = ConnectError.from(error, Code.Unknown);
    const code =
      this.#isServer && !(error instanceof ConnectError) ? Code.Internal : connectError.code;
    this.#finish(code, connectError.rawMessage);
  }

  /** Ends the call once; code 0 means OK. */
  #finish(code: number, message: string | undefined): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#signal.removeEventListener("abort", this);
    this.#admission?.release(this.#info.procedure);
    finishRpc(this.#span, this.#isServer, this.#info, this.#system, this.#startMs, code, message);
  }
}
