import type {
  Interceptor,
  StreamRequest,
  StreamResponse,
  UnaryRequest,
  UnaryResponse,
} from "@connectrpc/connect";
import { context, propagation, SpanKind, trace } from "@opentelemetry/api";
import { headersSetter } from "./headers.ts";
import { noSpan } from "./instruments.ts";
import {
  clientErrorCode,
  errorMessage,
  methodInfo,
  rpcSystemOf,
  serverAddressOf,
} from "./rpc-semantics.ts";
import { finishRpc, startRpcSpan, TracedStream } from "./rpc-span.ts";

type Next = (req: UnaryRequest | StreamRequest) => Promise<UnaryResponse | StreamResponse>;

/**
 * Client interceptors for any Connect transport: one CLIENT span per call, child of
 * the active context; W3C `traceparent`/`tracestate`/`baggage` injected into the
 * request headers; the `rpc.client.duration` histogram. Streaming spans end when the
 * response stream ends, fails, or the call's signal aborts.
 */
export function createClientInterceptors(): Interceptor[] {
  return [clientInterceptor];
}

const clientInterceptor: Interceptor = (next) => (req) => handleClientCall(next, req);

async function handleClientCall(
  next: Next,
  req: UnaryRequest | StreamRequest,
): Promise<UnaryResponse | StreamResponse> {
  const startMs = performance.now();
  const info = methodInfo(req.method);
  // Transports set the protocol's content type before interceptors run.
  const system = rpcSystemOf(req.header.get("content-type"));
  const parent = context.active();
  const span = startRpcSpan(info, system, SpanKind.CLIENT, parent);
  if (span.isRecording()) {
    const server = serverAddressOf(req.url);
    if (server !== undefined) {
      span.setAttribute("server.address", server.address);
      span.setAttribute("server.port", server.port);
    }
  }
  propagation.inject(
    span === noSpan ? parent : trace.setSpan(parent, span),
    req.header,
    headersSetter,
  );
  let res: UnaryResponse | StreamResponse;
  try {
    res = await next(req);
  } catch (error) {
    finishRpc(span, false, info, system, startMs, clientErrorCode(error), errorMessage(error));
    throw error;
  }
  if (!res.stream) {
    finishRpc(span, false, info, system, startMs, 0, undefined);
    return res;
  }
  return {
    ...res,
    message: new TracedStream(
      res.message,
      undefined,
      span,
      false,
      info,
      system,
      startMs,
      req.signal,
    ),
  };
}
