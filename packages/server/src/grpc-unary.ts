import type { DescMethodUnary } from "@bufbuild/protobuf";
import {
  Code,
  ConnectError,
  type ConnectRouter,
  createHandlerContext,
  createMethodImplSpec,
  createServiceImplSpec,
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
  type UniversalServerRequest,
  type UniversalServerResponse,
  validateUniversalHandlerOptions,
} from "@connectrpc/connect/protocol";
import { grpcStatusOk, parseTimeout, setTrailerStatus } from "@connectrpc/connect/protocol-grpc";
import { readBody } from "./read-body.ts";

/**
 * Serves a unary gRPC call whose request body has been read in full, or returns undefined to
 * leave the call to connect's own handler.
 */
export type GrpcUnaryFastPath = (
  req: UniversalServerRequest,
  read: readonly Uint8Array[],
) => Promise<UniversalServerResponse> | undefined;

const binaryGrpc = /^application\/grpc(\+proto)?$/;
const prefixBytes = 5;

/**
 * connect-es serves a unary gRPC call through the same pipeline as a bidi stream: about ten
 * async generators (compiled to ES2017 state machines) that split, decompress, parse,
 * invoke, serialize, compress and join envelopes, one message at a time. For the common
 * call, binary, uncompressed, one well-formed envelope already read in full, this does the
 * same steps directly with connect's own building blocks (handler context, interceptors,
 * request gate, serialization and its size limits, response compression, trailer status).
 * Anything else (JSON, a compressed or malformed request, a bad timeout, another protocol)
 * is left to connect's handler, which answers it as it always did.
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
  return (req, read) => {
    const header = req.header;
    if (req.method !== "POST" || !binaryGrpc.test(header.get("content-type") ?? "")) return;
    const encoding = header.get("grpc-encoding");
    if (encoding !== null && encoding !== "identity") return;
    const timeout = parseTimeout(header.get("grpc-timeout"), opt.maxTimeoutMs);
    if (timeout.error !== undefined) return;
    const message = singleMessage(read, opt.readMaxBytes);
    if (message === undefined) return;
    return serve(spec, method, opt, req, message, timeout.timeoutMs, input, output);
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

async function serve(
  spec: UnarySpec,
  method: DescMethodUnary,
  opt: Options,
  req: UniversalServerRequest,
  message: Uint8Array,
  timeoutMs: number | undefined,
  input: ReturnType<ReturnType<typeof createMethodSerializationLookup>["getI"]>,
  output: ReturnType<ReturnType<typeof createMethodSerializationLookup>["getO"]>,
): Promise<UniversalServerResponse> {
  const context = createHandlerContext({
    ...spec,
    service: method.parent,
    requestMethod: req.method,
    protocolName: "grpc",
    timeoutMs,
    shutdownSignal: opt.shutdownSignal,
    requestSignal: req.signal,
    requestHeader: req.header,
    url: req.url,
    responseHeader: { "content-type": "application/grpc+proto" },
    responseTrailer: { "grpc-status": grpcStatusOk },
    contextValues: req.contextValues,
  });
  const compression = compressionNegotiate(
    opt.acceptCompression,
    null,
    req.header.get("grpc-accept-encoding"),
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
    context.abort();
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
  return {
    status: 200,
    header: context.responseHeader,
    body: body === undefined ? undefined : readBody([body]),
    trailer: context.responseTrailer,
  };
}
