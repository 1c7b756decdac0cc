import type {
  Interceptor,
  StreamRequest,
  StreamResponse,
  UnaryRequest,
  UnaryResponse,
} from "@connectrpc/connect";
import { ConnectError } from "@connectrpc/connect";
import { context, SpanKind } from "@opentelemetry/api";
import { callerContext, ensureContextManager, HandlerCallContext } from "./call-context.ts";
import { noSpan, spansOn } from "./instruments.ts";
import { errorMessage, methodInfo, rpcSystemOf, serverErrorCode } from "./rpc-semantics.ts";
import { finishRpc, startRpcSpan, TracedStream } from "./rpc-span.ts";

type Next = (req: UnaryRequest | StreamRequest) => Promise<UnaryResponse | StreamResponse>;

/**
 * Decides, as each call arrives, whether the server takes it: a concurrency limit, for
 * one. It lives in the tracing interceptor, which already knows when every call ends
 * (a unary response, or the last message of a stream), so a gate costs no interceptor
 * layer of its own, and refused calls still show in spans and metrics.
 */
export interface CallAdmission {
  /**
   * Takes a call to `procedure` (`package.Service/Method`), or throws the ConnectError that
   * refuses it. The procedure lets an admission keep separate budgets, so that health checks
   * are never starved by application calls.
   */
  admit(procedure: string): void;
  /** A call that admit() took has ended, however it ended. */
  release(procedure: string): void;
}

export interface ServerInterceptorOptions {
  admission?: CallAdmission;
}

/**
 * Server interceptors for `connectNodeAdapter({ interceptors })`: one SERVER span per
 * call (parented on the caller's W3C trace context), the `rpc.server.duration`
 * histogram, and the handler call (deadline, signal) in the OTel Context, so that
 * outbound calls made by the handler inherit trace, baggage, deadline and
 * cancellation without any code in the handler.
 */
export function createServerInterceptors(options: ServerInterceptorOptions = {}): Interceptor[] {
  ensureContextManager();
  const { admission } = options;
  return [(next) => (req) => handleServerCall(next, req, admission)];
}

async function handleServerCall(
  next: Next,
  req: UnaryRequest | StreamRequest,
  admission: CallAdmission | undefined,
): Promise<UnaryResponse | StreamResponse> {
  const startMs = performance.now();
  const info = methodInfo(req.method);
  const system = rpcSystemOf(req.header.get("content-type"));
  // With spans off, the caller's context is read from the headers only if the handler
  // needs it (HandlerCallContext); a span needs its parent now.
  const caller = spansOn() ? callerContext(req.header) : undefined;
  const span = caller === undefined ? noSpan : startRpcSpan(info, system, SpanKind.SERVER, caller);
  const ctx = new HandlerCallContext(
    req.header,
    system,
    startMs,
    req.signal,
    info.procedure,
    caller,
    span === noSpan ? undefined : span,
  );
  try {
    admission?.admit(info.procedure);
  } catch (error) {
    finishRpc(span, true, info, system, startMs, serverErrorCode(error), errorMessage(error));
    throw error;
  }
  // Admitted from here on: every way out releases exactly once.
  let res: UnaryResponse | StreamResponse;
  try {
    res = await context.with(ctx, next, undefined, req);
  } catch (thrown) {
    // A handler ended by its deadline (or a cancel) rejects with whatever its await threw,
    // an AbortError say; the caller is owed the reason the call was ended for.
    const reason: unknown = req.signal.aborted ? req.signal.reason : undefined;
    const error = reason instanceof ConnectError ? reason : thrown;
    admission?.release(info.procedure);
    finishRpc(span, true, info, system, startMs, serverErrorCode(error), errorMessage(error));
    throw error;
  }
  if (!res.stream) {
    admission?.release(info.procedure);
    finishRpc(span, true, info, system, startMs, 0, undefined);
    return res;
  }
  return {
    ...res,
    message: new TracedStream(
      res.message,
      ctx,
      span,
      true,
      info,
      system,
      startMs,
      req.signal,
      admission,
    ),
  };
}
