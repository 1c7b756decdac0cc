import type http from "node:http";
import type { DescMethodUnary } from "@bufbuild/protobuf";
import {
  Code,
  ConnectError,
  type ContextValues,
  createContextValues,
  type HandlerContext,
} from "@connectrpc/connect";
import { invokeUnaryImplementation } from "@connectrpc/connect/protocol";
import { abortedOnResponseClose } from "./h1-request.ts";
import { abortedOnClose } from "./h2-request.ts";
import { RequestHeaders, ResponseHeaders } from "./lazy-headers.ts";
import { endedCallReason, type NodeRequest, type NodeResponse } from "./node-http.ts";
import type { HandlerOptions, Serializations, UnarySpec } from "./unary-fast-path.ts";

/** What a protocol's calls start with; one per protocol and format, shared by its calls. */
export interface CallProtocol {
  name: string;
  responseHeader: Record<string, string>;
  responseTrailer: Record<string, string>;
}

export type CallContext = HandlerContext & {
  readonly responseHeader: ResponseHeaders;
  readonly responseTrailer: ResponseHeaders;
  abort(reason: unknown): void;
};

/**
 * What connect's `createHandlerContext` and connect-node's request conversion build, with
 * one signal instead of three: connect links a signal for the deadline and the request's
 * own (aborted when its HTTP/2 stream or HTTP/1.1 response closes) into a third for the
 * handler, each an EventTarget with listeners and an Event per abort. Here the deadline and
 * the close abort the handler's signal directly. The request's headers are not copied
 * until something reads more of them than a header's value (lazy-headers.ts), and the
 * response's start as the protocol's shared record.
 */
export function createCallContext(
  method: DescMethodUnary,
  protocol: CallProtocol,
  req: NodeRequest,
  res: NodeResponse,
  url: string,
  timeoutMs: number | undefined,
  contextValues: ContextValues | undefined,
): CallContext {
  const controller =
    "stream" in req ? abortedOnClose(req) : abortedOnResponseClose(res as http.ServerResponse);
  let timer: NodeJS.Timeout | undefined;
  let deadlineAt: number | undefined;
  if (timeoutMs !== undefined) {
    deadlineAt = Date.now() + timeoutMs;
    const expire = () =>
      controller.abort(new ConnectError("the operation timed out", Code.DeadlineExceeded));
    if (timeoutMs <= 0) expire();
    else timer = setTimeout(expire, timeoutMs);
  }
  return {
    method,
    service: method.parent,
    requestMethod: req.method ?? "",
    protocolName: protocol.name,
    url,
    signal: controller.signal,
    timeoutMs: () => (deadlineAt === undefined ? undefined : deadlineAt - Date.now()),
    requestHeader: new RequestHeaders(req.headers),
    responseHeader: new ResponseHeaders(protocol.responseHeader),
    responseTrailer: new ResponseHeaders(protocol.responseTrailer),
    values: contextValues ?? createContextValues(),
    abort(reason) {
      clearTimeout(timer);
      controller.abort(reason);
    },
  };
}

type Output = ReturnType<Serializations["getO"]>;

/**
 * Runs a unary call's handler as connect does (the request gate before the message is
 * parsed, then the interceptors), encodes its answer with `encode`, and ends the context:
 * with the shared reason after an answer, with the error after a failure, which it returns
 * as a ConnectError (serve()'s request gate corrects decoding errors in place when the
 * context is aborted with them, so the abort comes first).
 */
export async function runUnary(
  spec: UnarySpec,
  opt: HandlerOptions,
  context: CallContext,
  message: Uint8Array,
  input: ReturnType<Serializations["getI"]>,
  encode: (response: Parameters<Output["serialize"]>[0]) => Uint8Array | Promise<Uint8Array>,
): Promise<Uint8Array | ConnectError> {
  try {
    if (opt.requestGate !== undefined) await opt.requestGate(context);
    const request = input.parse(message);
    const body = await encode(
      await invokeUnaryImplementation(spec, context, request, opt.interceptors),
    );
    context.abort(endedCallReason);
    return body;
  } catch (e) {
    context.abort(e);
    return e instanceof ConnectError
      ? e
      : new ConnectError("internal error", Code.Internal, undefined, undefined, e);
  }
}
