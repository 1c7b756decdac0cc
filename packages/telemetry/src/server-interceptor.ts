import type {
  Interceptor,
  StreamRequest,
  StreamResponse,
  UnaryRequest,
  UnaryResponse,
} from "@connectrpc/connect";
import { context, propagation, ROOT_CONTEXT, SpanKind, trace } from "@opentelemetry/api";
import { ensureContextManager, HandlerCallContext } from "./call-context.ts";
import { headersGetter } from "./headers.ts";
import { noSpan } from "./instruments.ts";
import {
  errorMessage,
  methodInfo,
  requestTimeoutMs,
  rpcSystemOf,
  serverErrorCode,
} from "./rpc-semantics.ts";
import { finishRpc, startRpcSpan, TracedStream } from "./rpc-span.ts";

type Next = (req: UnaryRequest | StreamRequest) => Promise<UnaryResponse | StreamResponse>;

/**
 * Server interceptors for `connectNodeAdapter({ interceptors })`: one SERVER span per
 * call (parented on the caller's W3C trace context), the `rpc.server.duration`
 * histogram, and the handler call (deadline, signal) in the OTel Context, so that
 * outbound calls made by the handler inherit trace, baggage, deadline and
 * cancellation without any code in the handler.
 */
export function createServerInterceptors(): Interceptor[] {
  ensureContextManager();
  return [serverInterceptor];
}

const serverInterceptor: Interceptor = (next) => (req) => handleServerCall(next, req);

async function handleServerCall(
  next: Next,
  req: UnaryRequest | StreamRequest,
): Promise<UnaryResponse | StreamResponse> {
  const startMs = performance.now();
  const info = methodInfo(req.method);
  const system = rpcSystemOf(req.header.get("content-type"));
  const timeoutMs = requestTimeoutMs(req.header, system);
  const parent = propagation.extract(ROOT_CONTEXT, req.header, headersGetter);
  const span = startRpcSpan(info, system, SpanKind.SERVER, parent);
  const ctx = new HandlerCallContext(
    span === noSpan ? parent : trace.setSpan(parent, span),
    req.signal,
    timeoutMs === undefined ? undefined : Date.now() + timeoutMs,
    info.procedure,
  );
  let res: UnaryResponse | StreamResponse;
  try {
    res = await context.with(ctx, next, undefined, req);
  } catch (error) {
    finishRpc(span, true, info, system, startMs, serverErrorCode(error), errorMessage(error));
    throw error;
  }
  if (!res.stream) {
    finishRpc(span, true, info, system, startMs, 0, undefined);
    return res;
  }
  return {
    ...res,
    message: new TracedStream(res.message, ctx, span, true, info, system, startMs, req.signal),
  };
}
