import type { OutgoingHttpHeaders } from "node:http";
import type { DescMessage } from "@bufbuild/protobuf";
import type {
  ConnectRouter,
  ConnectRouterOptions,
  ContextValues,
  MethodImplSpec,
} from "@connectrpc/connect";
import { createMethodImplSpec, createServiceImplSpec } from "@connectrpc/connect";
import {
  createMethodSerializationLookup,
  createMethodUrl,
  type MethodSerializationLookup,
  validateUniversalHandlerOptions,
} from "@connectrpc/connect/protocol";
import { connectUnaryFastPath } from "./connect-unary.ts";
import { grpcUnaryFastPath } from "./grpc-unary.ts";
import type { NodeRequest, NodeResponse } from "./node-http.ts";

/** A unary call's whole answer, written at once. */
export interface UnaryAnswer {
  status: number;
  header: OutgoingHttpHeaders;
  /** None for a gRPC call that failed. */
  body: Uint8Array | undefined;
  /** gRPC's; a Connect unary answer carries its trailers in the header. */
  trailer: OutgoingHttpHeaders | undefined;
}

/**
 * Serves a unary call whose request body has been read in full, or returns undefined to leave
 * the call to connect's own handler.
 */
export type UnaryFastPath = (
  req: NodeRequest,
  res: NodeResponse,
  read: readonly Uint8Array[],
  contextValues: ContextValues | undefined,
) => Promise<UnaryAnswer> | undefined;

export type HandlerOptions = ReturnType<typeof validateUniversalHandlerOptions>;
export type UnarySpec = MethodImplSpec & { kind: "unary" };
export type Serializations = MethodSerializationLookup<DescMessage, DescMessage>;

/** The fast path of one protocol for one method. */
export type ProtocolFastPath = (
  spec: UnarySpec,
  serialization: Serializations,
  opt: HandlerOptions,
) => UnaryFastPath;

/**
 * connect-es serves a unary call through a pipeline of async generators built for streams
 * (grpc-unary.ts, connect-unary.ts say what each protocol's does), whose objects live long
 * enough to be promoted by the young-generation GC. For the common unary call these fast
 * paths do the same steps directly, with connect's own building blocks; any other call is
 * left to connect's handler, which answers it as it always did.
 *
 * `routes` is given a router that records the implementation of each unary method it is
 * given without options of its own (options can turn protocols off, which only connect's
 * handler knows how to honour). The router's options may turn a protocol off for all.
 */
export function createUnaryFastPaths(
  router: ConnectRouter,
  routes: (router: ConnectRouter) => void,
  options: ConnectRouterOptions,
): Map<string, UnaryFastPath> {
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
  const paths = new Map<string, UnaryFastPath>();
  const opt = validateUniversalHandlerOptions(options);
  // A server-wide shutdown signal is linked into each call's by connect's handler only.
  if (opt.shutdownSignal !== undefined) return paths;
  const protocols: ProtocolFastPath[] = [];
  if (options.grpc !== false) protocols.push(grpcUnaryFastPath);
  if (options.connect !== false) protocols.push(connectUnaryFastPath);
  for (const spec of specs) {
    if (spec.kind !== "unary") continue;
    const serialization = createMethodSerializationLookup(
      spec.method,
      opt.binaryOptions,
      opt.jsonOptions,
      opt,
    );
    const served = protocols.map((fastPath) => fastPath(spec, serialization, opt));
    paths.set(createMethodUrl("/", spec.method), (req, res, read, values) => {
      for (const serve of served) {
        const answer = serve(req, res, read, values);
        if (answer !== undefined) return answer;
      }
      return undefined;
    });
  }
  return paths;
}
