import type { Transport } from "@connectrpc/connect";
import {
  type ConnectTransportOptions,
  createConnectTransport,
  createGrpcTransport,
  createGrpcWebTransport,
  type GrpcTransportOptions,
  type GrpcWebTransportOptions,
} from "@connectrpc/connect-node";
import { withCallContext } from "./call-context-transport.ts";
import { createClientInterceptors } from "./client-interceptor.ts";

/** Options of {@link createTelemetryTransport}: connect-node's, plus the protocol and margin. */
export type TelemetryTransportOptions = (
  | (ConnectTransportOptions & { protocol?: "connect" })
  | (GrpcTransportOptions & { protocol: "grpc" })
  | (GrpcWebTransportOptions & { protocol: "grpc-web" })
) & {
  /** Milliseconds kept back from a handler's remaining time (see `withCallContext`). */
  marginMs?: number;
};

/**
 * A connect-node transport (Connect, gRPC or gRPC-Web; HTTP/1.1 or 2) with the client
 * interceptors first in its chain and `withCallContext` around it: calls carry trace
 * context and baggage, and inside a handler they inherit its deadline and cancellation.
 */
export function createTelemetryTransport(options: TelemetryTransportOptions): Transport {
  const { protocol, marginMs, ...transportOptions } = options;
  const interceptors = [...createClientInterceptors(), ...(options.interceptors ?? [])];
  let transport: Transport;
  switch (protocol) {
    case "grpc":
      transport = createGrpcTransport({
        ...(transportOptions as GrpcTransportOptions),
        interceptors,
      });
      break;
    case "grpc-web":
      transport = createGrpcWebTransport({
        ...(transportOptions as GrpcWebTransportOptions),
        interceptors,
      });
      break;
    default:
      transport = createConnectTransport({
        ...(transportOptions as ConnectTransportOptions),
        interceptors,
      });
  }
  return withCallContext(transport, { marginMs, defaultTimeoutMs: options.defaultTimeoutMs });
}
