import type http from "node:http";
import http2 from "node:http2";
import type { ConnectError } from "@connectrpc/connect";
import { encodeEnvelope } from "@connectrpc/connect/protocol";
import {
  codeToHttpStatus,
  endStreamFlag,
  endStreamToJson,
  errorToJsonBytes,
} from "@connectrpc/connect/protocol-connect";
import { setTrailerStatus } from "@connectrpc/connect/protocol-grpc";
import { trailerFlag, trailerSerialize } from "@connectrpc/connect/protocol-grpc-web";
import {
  nodeHeaders,
  type NodeRequest as Request,
  type NodeResponse as Response,
} from "./node-http.ts";

/** The RPC protocol a request speaks, told by its content type as Connect does. */
type Protocol = "grpc" | "grpc-web" | "connect-stream" | "connect-unary";

function protocolOf(req: Request): Protocol {
  const type = String(req.headers["content-type"] ?? "");
  if (type.startsWith("application/grpc-web")) return "grpc-web";
  if (type.startsWith("application/grpc")) return "grpc";
  if (type.startsWith("application/connect+")) return "connect-stream";
  return "connect-unary";
}

/**
 * Ends a call the server will not (or no longer) serve with `error`, in the form its client
 * reads as that error: gRPC status trailers (trailers-only when nothing was sent yet), a
 * gRPC-Web trailer frame, a Connect end-stream message, or a Connect unary error body. Then
 * stops a request body still coming: on HTTP/2 with RST_STREAM NO_ERROR once the answer is
 * out (RFC 9113, 8.1), on HTTP/1.1 by closing the connection, whose unread rest could not be
 * told from a next request.
 *
 * Used where Connect's own handler is not (or no longer) the one answering: requests refused
 * or timed out before they reach it, and calls still running when a shutdown's drain ends.
 */
export function endCallWithError(req: Request, res: Response, error: ConnectError): void {
  if (res.writableEnded || res.destroyed) return;
  const [status, headers, body] = res.headersSent
    ? [undefined, undefined, ...endOfStarted(req, res, error)]
    : errorResponse(req, error);
  if ("stream" in req) {
    const stream = req.stream;
    if (stream.destroyed) return;
    if (status === undefined) {
      // The response has started, through Node's compatibility layer, which sends trailers
      // once it ends. No RST here: closing the stream before its trailers are out spins
      // Node 24 (and the trailers would be lost). A request side left open is cut when the
      // connection closes.
      endResponse(res, body);
      return;
    }
    // The stream itself, not the compatibility response: the latter may not finish while
    // the request side is still open, and the RST below waits for the finish.
    stream.respond({ ":status": status, ...headers }, { endStream: body === undefined });
    if (body !== undefined) stream.end(body);
    stream.close(http2.constants.NGHTTP2_NO_ERROR);
    return;
  }
  if (status !== undefined) {
    if (!req.complete) res.setHeader("connection", "close");
    writeHead(res, status, headers ?? {});
  }
  res.once("finish", () => {
    if (!req.complete) req.socket.destroySoon();
  });
  endResponse(res, body);
}

function endResponse(res: Response, body: Uint8Array | undefined): void {
  if (body === undefined) res.end();
  else res.end(body);
}

/** The whole error response of a call that has sent nothing yet: status, headers, body. */
function errorResponse(
  req: Request,
  error: ConnectError,
): [number, http.OutgoingHttpHeaders, Uint8Array | undefined] {
  const contentType = String(req.headers["content-type"] ?? "");
  switch (protocolOf(req)) {
    case "grpc":
    case "grpc-web":
      return [
        200,
        { "content-type": contentType, ...nodeHeaders(setTrailerStatus(new Headers(), error)) },
        undefined,
      ];
    case "connect-stream":
      return [200, { "content-type": contentType }, connectEndStream(error)];
    case "connect-unary":
      return [
        codeToHttpStatus(error.code),
        { "content-type": "application/json" },
        errorToJsonBytes(error, {}),
      ];
  }
}

/**
 * What ends a call whose response has started: gRPC trailers (set on the response here), a
 * gRPC-Web trailer frame or a Connect end-stream message to write last. A Connect unary
 * response is already on its way whole, so nothing more is sent.
 */
function endOfStarted(req: Request, res: Response, error: ConnectError): [Uint8Array | undefined] {
  const status = setTrailerStatus(new Headers(), error);
  switch (protocolOf(req)) {
    case "grpc":
      res.addTrailers(nodeHeaders(status));
      return [undefined];
    case "grpc-web":
      return [encodeEnvelope(trailerFlag, trailerSerialize(status))];
    case "connect-stream":
      return [connectEndStream(error)];
    case "connect-unary":
      return [undefined];
  }
}

/** Both response classes take the same writeHead arguments; their types do not say so. */
function writeHead(res: Response, status: number, headers: http.OutgoingHttpHeaders): void {
  (res as http.ServerResponse).writeHead(status, headers);
}

function connectEndStream(error: ConnectError): Uint8Array {
  const json = endStreamToJson(new Headers(), error, {});
  return encodeEnvelope(endStreamFlag, new TextEncoder().encode(JSON.stringify(json)));
}
