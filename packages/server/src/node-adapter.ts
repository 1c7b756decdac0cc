import type http from "node:http";
import http2 from "node:http2";
import {
  Code,
  ConnectError,
  type ConnectRouter,
  type ConnectRouterOptions,
  type ContextValues,
  createConnectRouter,
} from "@connectrpc/connect";
import type { UniversalHandler, UniversalServerRequest } from "@connectrpc/connect/protocol";
import {
  universalRequestFromNodeRequest,
  universalResponseToNodeResponse,
} from "@connectrpc/connect-node";
import { createGrpcUnaryFastPaths } from "./grpc-unary.ts";
import { readBody } from "./read-body.ts";

type Request = http.IncomingMessage | http2.Http2ServerRequest;
type Response = http.ServerResponse | http2.Http2ServerResponse;

/**
 * Serves one request; `body` is the request body when it was already read in full (see
 * request-arrival.ts), so it need not be read from `req` again.
 */
export type RpcHandler = (req: Request, res: Response, body?: readonly Uint8Array[]) => void;

export interface NodeAdapterOptions extends ConnectRouterOptions {
  routes: (router: ConnectRouter) => void;
  /** Requests for a path no procedure serves. */
  fallback: (req: Request, res: Response) => void;
  /**
   * Wraps each request body before the handler reads it (an envelope check, say). `body` is
   * the request itself when it was not read in advance; `read` is set when it was.
   */
  checkBody?: (
    req: UniversalServerRequest,
    read: readonly Uint8Array[] | undefined,
  ) => AsyncIterable<Uint8Array>;
  /** Values each call's handler context starts with. */
  contextValues?: (req: Request) => ContextValues;
  /** A handler failed in a way its client could not be told (connect-node logs these). */
  onError: (error: unknown, handler: UniversalHandler) => void;
}

/**
 * connect-node's `connectNodeAdapter`, with two per-call costs taken out (the router, the
 * protocol handlers, the interceptors and the response writing are connect's own):
 *
 * - An HTTP/2 request's signal is aborted when its stream closes, also after a normal end;
 *   connect-node aborts it without a reason, which makes Node build a `DOMException` (a
 *   stack trace) per call. Here a clean close aborts it with one shared AbortError; a reset
 *   stream still aborts it with the ConnectError connect-node gives for its code.
 * - A body already read in full is handed to the handler as is, instead of through two
 *   async generators over the request stream.
 * - A unary gRPC call that is binary, uncompressed and read in full takes a direct path
 *   instead of connect's streaming pipeline (grpc-unary.ts).
 */
export function createNodeAdapter(options: NodeAdapterOptions): RpcHandler {
  const router = createConnectRouter(options);
  const grpcUnary = createGrpcUnaryFastPaths(router, options.routes, options);
  const paths = new Map<string, UniversalHandler>();
  for (const handler of router.handlers) paths.set(handler.requestPath, handler);
  const { fallback, checkBody, contextValues, onError } = options;
  return (req, res, body) => {
    const url = req.url ?? "";
    const q = url.indexOf("?");
    const path = q < 0 ? url : url.slice(0, q);
    const handler = paths.get(path);
    if (handler === undefined) {
      fallback(req, res);
      return;
    }
    const values = contextValues?.(req);
    const uReq =
      "stream" in req
        ? universalRequestFromH2(req, body, values)
        : withBody(universalRequestFromNodeRequest(req, res, undefined, values), body);
    const fast = body === undefined ? undefined : grpcUnary.get(path)?.(uReq, body);
    if (fast === undefined && checkBody !== undefined) uReq.body = checkBody(uReq, body);
    (fast ?? handler(uReq))
      .then((uRes) => universalResponseToNodeResponse(uRes, res))
      .catch((reason: unknown) => {
        // Aborted: the client went away while the response was written; nothing to tell.
        if (ConnectError.from(reason).code === Code.Aborted) return;
        onError(reason, handler);
      });
  };
}

/**
 * The reason of a signal aborted after its call ended normally: what `abort()` without a
 * reason gives (an AbortError), built once instead of once per call.
 */
export const endedCallReason = new DOMException("This operation was aborted", "AbortError");

/** What connect-node reports for an HTTP/2 stream reset with each error code. */
const resetCodes = new Map<number, [string, Code]>([
  [http2.constants.NGHTTP2_PROTOCOL_ERROR, ["PROTOCOL_ERROR", Code.Internal]],
  [http2.constants.NGHTTP2_INTERNAL_ERROR, ["INTERNAL_ERROR", Code.Internal]],
  [http2.constants.NGHTTP2_FLOW_CONTROL_ERROR, ["FLOW_CONTROL_ERROR", Code.Internal]],
  [http2.constants.NGHTTP2_SETTINGS_TIMEOUT, ["SETTINGS_TIMEOUT", Code.Internal]],
  [http2.constants.NGHTTP2_FRAME_SIZE_ERROR, ["FRAME_SIZE_ERROR", Code.Internal]],
  [http2.constants.NGHTTP2_COMPRESSION_ERROR, ["COMPRESSION_ERROR", Code.Internal]],
  [http2.constants.NGHTTP2_CONNECT_ERROR, ["CONNECT_ERROR", Code.Internal]],
  [http2.constants.NGHTTP2_REFUSED_STREAM, ["REFUSED_STREAM", Code.Unavailable]],
  [http2.constants.NGHTTP2_CANCEL, ["CANCEL", Code.Canceled]],
  [http2.constants.NGHTTP2_ENHANCE_YOUR_CALM, ["ENHANCE_YOUR_CALM", Code.ResourceExhausted]],
  [http2.constants.NGHTTP2_INADEQUATE_SECURITY, ["INADEQUATE_SECURITY", Code.PermissionDenied]],
  [http2.constants.NGHTTP2_HTTP_1_1_REQUIRED, ["HTTP_1_1_REQUIRED", Code.PermissionDenied]],
]);

function resetError(rstCode: number): ConnectError | undefined {
  const known = resetCodes.get(rstCode);
  if (known === undefined) return undefined;
  return new ConnectError(
    `http/2 stream closed with error code ${known[0]} (0x${rstCode.toString(16)})`,
    known[1],
  );
}

function universalRequestFromH2(
  req: http2.Http2ServerRequest,
  body: readonly Uint8Array[] | undefined,
  contextValues: ContextValues | undefined,
): UniversalServerRequest {
  const authority = req.authority;
  if (authority === undefined) {
    // As connect-node: a request without :authority or Host cannot be given a URL.
    throw new ConnectError(
      "unable to determine request authority from Node.js server request",
      Code.Internal,
    );
  }
  const controller = new AbortController();
  req.once("close", () => controller.abort(resetError(req.stream.rstCode) ?? endedCallReason));
  const protocol = "encrypted" in req.socket && req.socket.encrypted ? "https" : "http";
  return {
    httpVersion: req.httpVersion,
    method: req.method,
    url: new URL(req.url, `${protocol}://${authority}`).toString(),
    header: nodeHeaderToWebHeader(req.headers),
    body: body === undefined ? req : readBody(body),
    signal: controller.signal,
    contextValues,
  };
}

function withBody(
  uReq: UniversalServerRequest,
  body: readonly Uint8Array[] | undefined,
): UniversalServerRequest {
  if (body !== undefined) uReq.body = readBody(body);
  return uReq;
}

/** Node's request headers as Fetch API Headers, HTTP/2 pseudo-headers left out (as connect-node). */
function nodeHeaderToWebHeader(headers: http2.IncomingHttpHeaders): Headers {
  const header = new Headers();
  for (const name in headers) {
    if (name.charCodeAt(0) === 58 /* ":" */) continue;
    const value = headers[name];
    if (value === undefined) continue;
    if (typeof value === "string") header.append(name, value);
    else for (const v of value) header.append(name, v);
  }
  return header;
}
