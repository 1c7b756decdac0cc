import type { DescMethodUnary } from "@bufbuild/protobuf";
import { ConnectError } from "@connectrpc/connect";
import {
  type Compression,
  compressionNegotiate,
  envelopeCompress,
} from "@connectrpc/connect/protocol";
import { grpcStatusOk, parseTimeout, setTrailerStatus } from "@connectrpc/connect/protocol-grpc";
import {
  type CallContext,
  type CallProtocol,
  createCallContext,
  runUnary,
} from "./call-context.ts";
import { authorityOf, headerValue, rememberingRequestUrl } from "./node-http.ts";
import type {
  HandlerOptions,
  ProtocolFastPath,
  Serializations,
  UnaryAnswer,
  UnarySpec,
} from "./unary-fast-path.ts";

const binaryGrpc = /^application\/grpc(\+proto)?$/;
const prefixBytes = 5;

const grpc: CallProtocol = {
  name: "grpc",
  responseHeader: Object.freeze({ "content-type": "application/grpc+proto" }),
  responseTrailer: Object.freeze({ "grpc-status": grpcStatusOk }),
};
const grpcCompressed = new Map<string, CallProtocol>();

/**
 * The protocol with the answer's compression already in its shared response headers, as
 * connect sets it on every call whose client accepts one (grpc-js and grpc-go clients accept
 * gzip). Set per call, it made every such call copy its response headers into a `Headers`
 * and back (lazy-headers.ts).
 */
function grpcAnswering(compress: Compression | null): CallProtocol {
  if (compress === null) return grpc;
  let protocol = grpcCompressed.get(compress.name);
  if (protocol === undefined) {
    protocol = {
      ...grpc,
      responseHeader: Object.freeze({ ...grpc.responseHeader, "grpc-encoding": compress.name }),
    };
    grpcCompressed.set(compress.name, protocol);
  }
  return protocol;
}

/**
 * connect-es serves a unary gRPC call through the same pipeline as a bidi stream: about ten
 * async generators (compiled to ES2017 state machines) that split, decompress, parse,
 * invoke, serialize, compress and join envelopes, one message at a time. For the common
 * call, over HTTP/2, binary, uncompressed, one well-formed envelope already read in full,
 * this does the same steps directly with connect's own building blocks (interceptors,
 * request gate, serialization and its size limits, response compression, trailer status)
 * and a handler context of its own (createCallContext). Anything else (JSON, a compressed
 * or malformed request, a bad timeout, HTTP/1.1) is left to connect's handler.
 */
export const grpcUnaryFastPath: ProtocolFastPath = (spec, serialization, opt) => {
  const method = spec.method as DescMethodUnary;
  const input = serialization.getI(true);
  const output = serialization.getO(true);
  const urls = rememberingRequestUrl();
  return (req, res, read, contextValues) => {
    // Trailers, where gRPC puts its status, are written through HTTP/2's API only.
    if (!("stream" in req)) return;
    const headers = req.headers;
    if (req.method !== "POST" || !binaryGrpc.test(headers["content-type"] ?? "")) return;
    const encoding = headers["grpc-encoding"];
    if (encoding !== undefined && encoding !== "identity") return;
    const timeout = parseTimeout(headerValue(headers["grpc-timeout"]), opt.maxTimeoutMs);
    if (timeout.error !== undefined) return;
    // As connect-node: a request with no authority has no URL, and is refused there.
    const authority = authorityOf(req);
    if (authority === undefined) return;
    const message = singleMessage(read, opt.readMaxBytes);
    if (message === undefined) return;
    const compress = compressionNegotiate(
      opt.acceptCompression,
      null,
      headerValue(headers["grpc-accept-encoding"]),
      "grpc-accept-encoding",
    ).response;
    const context = createCallContext(
      method,
      grpcAnswering(compress),
      req,
      res,
      urls(req, authority),
      timeout.timeoutMs,
      contextValues,
    );
    return serve(spec, opt, context, message, compress, input, output);
  };
};

/** The message of a body that is exactly one uncompressed envelope within the limit. */
function singleMessage(read: readonly Uint8Array[], readMaxBytes: number): Uint8Array | undefined {
  const body = read.length === 1 ? read[0]! : Buffer.concat(read);
  if (body.length < prefixBytes || body[0] !== 0) return undefined;
  const length = new DataView(body.buffer, body.byteOffset, prefixBytes).getUint32(1);
  if (length !== body.length - prefixBytes || length > readMaxBytes) return undefined;
  return body.subarray(prefixBytes);
}

async function serve(
  spec: UnarySpec,
  opt: HandlerOptions,
  context: CallContext,
  message: Uint8Array,
  compress: Compression | null,
  input: ReturnType<Serializations["getI"]>,
  output: ReturnType<Serializations["getO"]>,
): Promise<UnaryAnswer> {
  const body = await runUnary(spec, opt, context, message, input, (response) => {
    const data = output.serialize(response);
    if (compress === null) return envelope(0, data);
    return envelopeCompress({ flags: 0, data }, compress, opt.compressMinBytes).then((e) =>
      envelope(e.flags, e.data),
    );
  });
  const failed = body instanceof ConnectError;
  if (failed) setTrailerStatus(context.responseTrailer, body);
  return {
    status: 200,
    header: context.responseHeader.outgoing(),
    body: failed ? undefined : body,
    trailer: context.responseTrailer.outgoing(),
  };
}

/** connect's `encodeEnvelope`, in a buffer from Node's pool instead of a new ArrayBuffer. */
function envelope(flags: number, data: Uint8Array): Uint8Array {
  const out = Buffer.allocUnsafe(prefixBytes + data.length);
  out[0] = flags;
  out.writeUInt32BE(data.length, 1);
  out.set(data, prefixBytes);
  return out;
}
