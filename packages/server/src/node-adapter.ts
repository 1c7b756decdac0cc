import type http from "node:http";
import type http2 from "node:http2";
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
import { abortedOnClose } from "./h2-request.ts";
import {
  clientGone,
  type NodeRequest as Request,
  type NodeResponse as Response,
  requestUrl,
  webHeaders,
} from "./node-http.ts";
import { readBody } from "./read-body.ts";
import { createUnaryFastPaths, type UnaryAnswer } from "./unary-fast-path.ts";

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
   * Wraps each request body before connect's handler reads it (an envelope check, say).
   * `body` is the request itself when it was not read in advance; `read` is set when it was.
   * A call a fast path serves (unary-fast-path.ts) does not come here.
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
 * connect-node's `connectNodeAdapter`, with per-call costs taken out (the router, the
 * protocol handlers, the interceptors and the response writing are connect's own):
 *
 * - An HTTP/2 request's signal is aborted when its stream closes, also after a normal end;
 *   connect-node aborts it without a reason, which makes Node build a `DOMException` (a
 *   stack trace) per call. Here a clean close aborts it with one shared AbortError; a reset
 *   stream still aborts it with the ConnectError connect-node gives for its code.
 * - A body already read in full is handed to the handler as is, instead of through two
 *   async generators over the request stream.
 * - A unary call read in full, gRPC (binary, uncompressed, HTTP/2) or Connect (POST,
 *   uncompressed), takes a direct path instead of connect's pipeline (unary-fast-path.ts).
 */
export function createNodeAdapter(options: NodeAdapterOptions): RpcHandler {
  const router = createConnectRouter(options);
  const unary = createUnaryFastPaths(router, options.routes, options);
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
    const fast = body !== undefined ? unary.get(path)?.(req, res, body, values) : undefined;
    const fail = (reason: unknown) => {
      // Aborted: the client went away while the response was written; nothing to tell.
      if (ConnectError.from(reason).code === Code.Aborted) return;
      onError(reason, handler);
    };
    if (fast !== undefined) {
      fast.then((answer) => writeUnary(answer, req, res)).catch(fail);
      return;
    }
    const uReq =
      "stream" in req
        ? universalRequestFromH2(req, body, values)
        : withBody(universalRequestFromNodeRequest(req, res, undefined, values), body);
    if (checkBody !== undefined) uReq.body = checkBody(uReq, body);
    handler(uReq)
      .then((uRes) => universalResponseToNodeResponse(uRes, res))
      .catch(fail);
  };
}

/**
 * Writes a whole unary answer at once. connect-node's writer takes any response body as an
 * async iterable, a promise and two listeners per chunk, and waits for an 'end' event a
 * response never emits, which keeps the call's objects alive until a full GC.
 */
function writeUnary(answer: UnaryAnswer, req: Request, res: Response): void {
  if (clientGone(req)) return;
  // Both response classes take the same writeHead arguments; their types do not say so.
  (res as http.ServerResponse).writeHead(answer.status, answer.header);
  if (answer.trailer !== undefined) res.addTrailers(answer.trailer);
  if (answer.body === undefined) res.end();
  else res.end(answer.body);
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
  return {
    httpVersion: req.httpVersion,
    method: req.method,
    url: requestUrl(req, authority),
    header: webHeaders(req.headers),
    body: body === undefined ? req : readBody(body),
    signal: abortedOnClose(req).signal,
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
