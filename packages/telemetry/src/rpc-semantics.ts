import type { DescMethod } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import type { Attributes } from "@opentelemetry/api";
import { createDurationSeries, type DurationSeries } from "./rpc-durations.ts";

/**
 * `rpc.system` per wire protocol. gRPC-Web reports "grpc" because it carries gRPC
 * status codes; the Connect protocol reports "connect_rpc".
 */
export const RpcSystem = { connect: 0, grpc: 1 } as const;
export type RpcSystem = (typeof RpcSystem)[keyof typeof RpcSystem];
const SYSTEM_NAMES = ["connect_rpc", "grpc"] as const;

/** The protocol of a request, from its content type (Connect GET requests have none). */
export function rpcSystemOf(contentType: string | null): RpcSystem {
  return contentType?.startsWith("application/grpc") ? RpcSystem.grpc : RpcSystem.connect;
}

/** Connect code names ("ok", "deadline_exceeded", ...) indexed by code number. */
export const CODE_NAMES: readonly string[] = Array.from({ length: 17 }, (_, code) =>
  code === 0
    ? "ok"
    : String(Code[code as Code])
        .replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`)
        .slice(1),
);

/** Span and metric attributes of one method, built once and shared by every call. */
export interface MethodInfo {
  /** `package.Service/Method`: the span name and the procedure path. */
  readonly procedure: string;
  readonly service: string;
  readonly method: string;
  /** Start attributes per {@link RpcSystem}. */
  readonly spanAttributes: readonly [Attributes, Attributes];
  /** Duration series per side (0 server, 1 client), {@link RpcSystem} and code, built on first use. */
  readonly durations: readonly [
    readonly [(DurationSeries | undefined)[], (DurationSeries | undefined)[]],
    readonly [(DurationSeries | undefined)[], (DurationSeries | undefined)[]],
  ];
}

const infos = new WeakMap<DescMethod, MethodInfo>();

export function methodInfo(method: DescMethod): MethodInfo {
  let info = infos.get(method);
  if (info === undefined) {
    const service = method.parent.typeName;
    const spanAttributes = SYSTEM_NAMES.map((system) => ({
      "rpc.system": system,
      "rpc.service": service,
      "rpc.method": method.name,
    }));
    info = {
      procedure: `${service}/${method.name}`,
      service,
      method: method.name,
      spanAttributes: [spanAttributes[0]!, spanAttributes[1]!],
      durations: [
        [[], []],
        [[], []],
      ],
    };
    infos.set(method, info);
  }
  return info;
}

/**
 * The duration series of a finished call, by side, system, service, method and code
 * name (`rpc.response.status_code`).
 */
export function durationSeries(
  info: MethodInfo,
  isServer: boolean,
  system: RpcSystem,
  code: number,
): DurationSeries {
  const byCode = info.durations[isServer ? 0 : 1][system];
  let series = byCode[code];
  if (series === undefined) {
    series = createDurationSeries(isServer, {
      ...info.spanAttributes[system],
      "rpc.response.status_code": CODE_NAMES[code] ?? "unknown",
    });
    byCode[code] = series;
  }
  return series;
}

/** The code a server reports for a handler error: anything but a ConnectError is Internal. */
export function serverErrorCode(error: unknown): Code {
  return error instanceof ConnectError ? error.code : Code.Internal;
}

/** The code a client sees for a failed call. */
export function clientErrorCode(error: unknown): Code {
  return ConnectError.from(error).code;
}

export function errorMessage(error: unknown): string {
  if (error instanceof ConnectError) return error.rawMessage;
  return error instanceof Error ? error.message : String(error);
}

const GRPC_TIMEOUT_UNIT_MS: Record<string, number> = {
  H: 3_600_000,
  M: 60_000,
  S: 1000,
  m: 1,
  u: 0.001,
  n: 0.000001,
};

/**
 * The timeout a request carries (`connect-timeout-ms`, or `grpc-timeout` for gRPC and
 * gRPC-Web), in milliseconds. Malformed values are ignored here: the Connect handler
 * itself rejects them with a clear error.
 */
export function requestTimeoutMs(header: Headers, system: RpcSystem): number | undefined {
  if (system === RpcSystem.connect) {
    const value = header.get("connect-timeout-ms");
    if (value === null || !/^\d{1,10}$/.test(value)) return undefined;
    return Number(value);
  }
  const value = header.get("grpc-timeout");
  if (value === null) return undefined;
  const match = /^(\d{1,8})([HMSmun])$/.exec(value);
  if (match === null) return undefined;
  return Number(match[1]) * GRPC_TIMEOUT_UNIT_MS[match[2]!]!;
}

/** `server.address` and `server.port` of a request URL, without the cost of `new URL()`. */
export function serverAddressOf(url: string): { address: string; port: number } | undefined {
  const schemeEnd = url.indexOf("://");
  if (schemeEnd < 0) return undefined;
  const hostStart = schemeEnd + 3;
  let hostEnd = url.indexOf("/", hostStart);
  if (hostEnd < 0) hostEnd = url.length;
  const host = url.slice(hostStart, hostEnd);
  const portStart = host.lastIndexOf(":");
  const hasPort = portStart > host.lastIndexOf("]");
  const address = (hasPort ? host.slice(0, portStart) : host).replace(/^\[|\]$/g, "");
  const port = hasPort ? Number(host.slice(portStart + 1)) : url.startsWith("https") ? 443 : 80;
  return { address, port };
}
