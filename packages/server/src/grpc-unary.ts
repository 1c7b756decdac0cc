import type http2 from "node:http2";
import type { DescMethodUnary } from "@bufbuild/protobuf";
import {
  Code,
  ConnectError,
  type ConnectRouter,
  type ContextValues,
  createContextValues,
  createMethodImplSpec,
  createServiceImplSpec,
  type HandlerContext,
  type MethodImplSpec,
} from "@connectrpc/connect";
import {
  compressionNegotiate,
  createMethodSerializationLookup,
  createMethodUrl,
  encodeEnvelope,
  envelopeCompress,
  invokeUnaryImplementation,
  type UniversalHandlerOptions,
  validateUniversalHandlerOptions,
} from "@connectrpc/connect/protocol";
import { grpcStatusOk, parseTimeout, setTrailerStatus } from "@connectrpc/connect/protocol-grpc";
import { abortedOnClose, endedCallReason, requestUrl, webHeaders } from "./h2-request.ts";

/** The answer to a unary gRPC call: always HTTP 200, the status in the trailer. */
export interface GrpcUnaryResponse {
  header: Headers;
  /** The enveloped response message; none when the call failed. */
  body: Uint8Array | undefined;
  trailer: Headers;
}

/**
 * Serves a unary gRPC call whose request body has been read in full, or returns undefined to
 * leave the call to connect's own handler.
 */
export type GrpcUnaryFastPath = (
  req: http2.Http2ServerRequest,
  read: readonly Uint8Array[],
  contextValues: ContextValues | undefined,
) => Promise<GrpcUnaryResponse> | undefined;

const binaryGrpc = /^application\/grpc(\+proto)?$/;
const prefixBytes = 5;

/**
 * connect-es serves a unary gRPC call through the same pipeline as a bidi stream: about ten
 * async generators (compiled to ES2017 state machines) that split, decompress, parse,
 * invoke, serialize, compress and join envelopes, one message at a time. For the common
 * call, over HTTP/2, binary, uncompressed, one well-formed envelope already read in full,
 * this does the same steps directly with connect's own building blocks (interceptors,
 * request gate, serialization and its size limits, response compression, trailer status)
 * and a handler context of its own (createCallContext). Anything else (JSON, a compressed
 * or malformed request, a bad timeout, another protocol, HTTP/1.1) is left to connect's
 * handler, which answers it as it always did.
 *
 * `routes` is given a router that records the implementation of each unary method it is
 * given without options of its own (options can turn protocols off, which only connect's
 * handler knows how to honour).
 */
export function createGrpcUnaryFastPaths(
  router: ConnectRouter,
  routes: (router: ConnectRouter) => void,
  options: Partial<UniversalHandlerOptions>,
): Map<string, GrpcUnaryFastPath> {
  const specs: MethodImplSpec[] = [];
  const recording: ConnectRouter = {
    get handlers() {
      return router.handlers;
    },
    service(service, implementation, serviceOptions) {
      router.service(service, implementation, serviceOptions);
      if (serviceOptions === undefined) {
        specs.push(...Object.values(createServiceImplSpec(service, implementation).methods));
      }
      return recording;
    },
    rpc(method, impl, methodOptions) {
      router.rpc(method, impl, methodOptions);
      if (methodOptions === undefined) specs.push(createMethodImplSpec(method, impl));
      return recording;
    },
  };
  routes(recording);
  const opt = validateUniversalHandlerOptions(options);
  const paths = new Map<string, GrpcUnaryFastPath>();
  for (const spec of specs) {
    if (spec.kind !== "unary") continue;
    paths.set(createMethodUrl("/", spec.method), fastPath(spec, opt));
  }
  return paths;
}

type Options = ReturnType<typeof validateUniversalHandlerOptions>;
type UnarySpec = MethodImplSpec & { kind: "unary" };

function fastPath(spec: UnarySpec, opt: Options): GrpcUnaryFastPath {
  const method = spec.method as DescMethodUnary;
  const serialization = createMethodSerializationLookup(
    method,
    opt.binaryOptions,
    opt.jsonOptions,
    opt,
  );
  const input = serialization.getI(true);
  const output = serialization.getO(true);
  return (req, read, contextValues) => {
    // A server-wide shutdown signal is linked into each call's by connect's handler only.
    if (opt.shutdownSignal !== undefined) return;
    const headers = req.headers;
    if (req.method !== "POST" || !binaryGrpc.test(headers["content-type"] ?? "")) return;
    const encoding = headers["grpc-encoding"];
    if (encoding !== undefined && encoding !== "identity") return;
    const timeout = parseTimeout(oneHeader(headers["grpc-timeout"]), opt.maxTimeoutMs);
    if (timeout.error !== undefined) return;
    // As connect-node: a request with no authority has no URL, and is refused there.
    const authority = req.authority;
    if (authority === undefined) return;
    const message = singleMessage(read, opt.readMaxBytes);
    if (message === undefined) return;
    const context = createCallContext(method, req, authority, timeout.timeoutMs, contextValues);
    return serve(spec, opt, context, message, input, output);
  };
}

/** The message of a body that is exactly one uncompressed envelope within the limit. */
function singleMessage(read: readonly Uint8Array[], readMaxBytes: number): Uint8Array | undefined {
  const body = read.length === 1 ? read[0]! : Buffer.concat(read);
  if (body.length < prefixBytes || body[0] !== 0) return undefined;
  const length = new DataView(body.buffer, body.byteOffset, prefixBytes).getUint32(1);
  if (length !== body.length - prefixBytes || length > readMaxBytes) return undefined;
  return body.subarray(prefixBytes);
}

/** A header Node may give as a list (an unknown one sent twice) as connect sees it. */
function oneHeader(value: string | string[] | undefined): string | null {
  if (value === undefined) return null;
  return typeof value === "string" ? value : value.join(", ");
}

type CallContext = HandlerContext & { abort(reason: unknown): void };

async function serve(
  spec: UnarySpec,
  opt: Options,
  context: CallContext,
  message: Uint8Array,
  input: ReturnType<ReturnType<typeof createMethodSerializationLookup>["getI"]>,
  output: ReturnType<ReturnType<typeof createMethodSerializationLookup>["getO"]>,
): Promise<GrpcUnaryResponse> {
  const compression = compressionNegotiate(
    opt.acceptCompression,
    null,
    context.requestHeader.get("grpc-accept-encoding"),
    "grpc-accept-encoding",
  );
  if (compression.response) context.responseHeader.set("grpc-encoding", compression.response.name);
  let body: Uint8Array | undefined;
  try {
    // As connect: the gate runs before the message is parsed.
    if (opt.requestGate !== undefined) await opt.requestGate(context);
    const request = input.parse(message);
    const response = await invokeUnaryImplementation(spec, context, request, opt.interceptors);
    const envelope = await envelopeCompress(
      { flags: 0, data: output.serialize(response) },
      compression.response,
      opt.compressMinBytes,
    );
    body = encodeEnvelope(envelope.flags, envelope.data);
    context.abort(endedCallReason);
  } catch (e) {
    // abort() first: serve()'s request gate corrects decoding errors in place there.
    context.abort(e);
    setTrailerStatus(
      context.responseTrailer,
      e instanceof ConnectError
        ? e
        : new ConnectError("internal error", Code.Internal, undefined, undefined, e),
    );
  }
  return { header: context.responseHeader, body, trailer: context.responseTrailer };
}

/**
 * What connect's `createHandlerContext` and connect-node's request conversion build, with
 * one signal instead of three: connect links a signal for the deadline and the request's
 * own (aborted when its stream closes) into a third for the handler, each an EventTarget
 * with listeners and an Event per abort. Here the deadline and the stream's close abort the
 * handler's signal directly. The request's headers are not copied again.
 */
function createCallContext(
  method: DescMethodUnary,
  req: http2.Http2ServerRequest,
  authority: string,
  timeoutMs: number | undefined,
  contextValues: ContextValues | undefined,
): CallContext {
  const controller = abortedOnClose(req);
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
    requestMethod: req.method,
    protocolName: "grpc",
    url: requestUrl(req, authority),
    signal: controller.signal,
    timeoutMs: () => (deadlineAt === undefined ? undefined : deadlineAt - Date.now()),
    requestHeader: webHeaders(req.headers),
    responseHeader: new Headers({ "content-type": "application/grpc+proto" }),
    responseTrailer: new Headers({ "grpc-status": grpcStatusOk }),
    values: contextValues ?? createContextValues(),
    abort(reason) {
      clearTimeout(timer);
      controller.abort(reason);
    },
  };
}
