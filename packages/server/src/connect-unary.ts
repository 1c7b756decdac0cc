import type { OutgoingHttpHeaders } from "node:http";
import type { DescMethodUnary } from "@bufbuild/protobuf";
import { ConnectError } from "@connectrpc/connect";
import { compressionNegotiate, mergeNonProtocolHeaders } from "@connectrpc/connect/protocol";
import {
  codeToHttpStatus,
  contentTypeUnaryJson,
  contentTypeUnaryProto,
  errorToJsonBytes,
  parseContentType,
  parseTimeout,
  protocolVersion,
  trailerMux,
} from "@connectrpc/connect/protocol-connect";
import {
  type CallContext,
  type CallProtocol,
  createCallContext,
  runUnary,
} from "./call-context.ts";
import { authorityOf, headerValue, nodeHeaders, rememberingRequestUrl } from "./node-http.ts";
import type {
  HandlerOptions,
  ProtocolFastPath,
  Serializations,
  UnaryAnswer,
  UnarySpec,
} from "./unary-fast-path.ts";

const connect = (contentType: string): CallProtocol => ({
  name: "connect",
  responseHeader: Object.freeze({ "content-type": contentType }),
  responseTrailer: Object.freeze({}),
});
const connectJson = connect(contentTypeUnaryJson);
const connectProto = connect(contentTypeUnaryProto);

/**
 * connect-es serves a unary Connect call with a handler context of linked signals, reads its
 * body through async generators, and gives connect-node its answer as an async iterable,
 * which connect-node writes chunk by chunk and then waits for an 'end' event. For a POST
 * with an uncompressed body already read in full, over HTTP/1.1 or HTTP/2, this does the
 * steps of connect's `createUnaryHandler` directly (request gate, parse with connect's
 * serialization and its limits, interceptors, serialize, error body, response compression,
 * trailers as "trailer-" headers). Anything else (GET, a compressed body, a bad timeout or
 * protocol version) is left to connect's handler.
 */
export const connectUnaryFastPath: ProtocolFastPath = (spec, serialization, opt) => {
  const method = spec.method as DescMethodUnary;
  const urls = rememberingRequestUrl();
  return (req, res, read, contextValues) => {
    const headers = req.headers;
    if (req.method !== "POST") return;
    const type = parseContentType(headerValue(headers["content-type"]));
    if (type === undefined || type.stream) return;
    const encoding = headers["content-encoding"];
    if (encoding !== undefined && encoding !== "identity") return;
    const timeout = parseTimeout(headerValue(headers["connect-timeout-ms"]), opt.maxTimeoutMs);
    if (timeout.error !== undefined) return;
    // Left to connect, which refuses a missing or wrong version once its request gate has run.
    if (
      opt.requireConnectProtocolHeader &&
      headerValue(headers["connect-protocol-version"]) !== protocolVersion
    ) {
      return;
    }
    const authority = authorityOf(req);
    if (authority === undefined) return;
    const body = read.length === 1 ? read[0]! : Buffer.concat(read);
    // Left to connect: over the limit, its message depends on whether Content-Length gave
    // the size; a Content-Length the body does not match (Node's parsers let none through)
    // is an error of its own.
    if (body.length > opt.readMaxBytes) return;
    const length = headers["content-length"];
    if (length !== undefined && Number.parseInt(length, 10) !== body.length) return;
    const context = createCallContext(
      method,
      type.binary ? connectProto : connectJson,
      req,
      res,
      urls(req, authority),
      timeout.timeoutMs,
      contextValues,
    );
    return serve(spec, opt, context, body, serialization, type.binary);
  };
};

async function serve(
  spec: UnarySpec,
  opt: HandlerOptions,
  context: CallContext,
  message: Uint8Array,
  serialization: Serializations,
  binary: boolean,
): Promise<UnaryAnswer> {
  // The request is not compressed (checked above).
  const compression = compressionNegotiate(
    opt.acceptCompression,
    null,
    context.requestHeader.get("accept-encoding"),
    "accept-encoding",
  );
  const input = serialization.getI(binary);
  const output = serialization.getO(binary);
  const answer = await runUnary(spec, opt, context, message, input, (r) => output.serialize(r));
  let status = 200;
  let body: Uint8Array;
  if (answer instanceof ConnectError) {
    status = codeToHttpStatus(answer.code);
    context.responseHeader.set("content-type", contentTypeUnaryJson);
    // Metadata of an error read from the wire (a downstream call's) is not relayed.
    if (!answer.isWireError) mergeNonProtocolHeaders(context.responseHeader, answer.metadata);
    body = errorToJsonBytes(answer, opt.jsonOptions);
  } else {
    body = answer;
  }
  if (compression.response && body.byteLength >= opt.compressMinBytes) {
    body = await compression.response.compress(body);
    context.responseHeader.set("content-encoding", compression.response.name);
  }
  return { status, header: outgoingHeader(context, body.byteLength), body, trailer: undefined };
}

/** The answer's headers, trailers as "trailer-" headers among them (connect's trailerMux). */
function outgoingHeader(context: CallContext, contentLength: number): OutgoingHttpHeaders {
  const header = context.responseHeader.unfilled;
  const trailer = context.responseTrailer.unfilled;
  // Neither read nor changed, and no trailers: the protocol's own record, with the length.
  if (header !== undefined && trailer !== undefined && Object.keys(trailer).length === 0) {
    return { ...header, "content-length": String(contentLength) };
  }
  const muxed = trailerMux(context.responseHeader, context.responseTrailer);
  muxed.set("content-length", String(contentLength));
  return nodeHeaders(muxed);
}
