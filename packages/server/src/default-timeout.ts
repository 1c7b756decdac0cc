import type { IncomingHttpHeaders } from "node:http";

/**
 * Gives a unary call that came without a timeout the server's maximum as its deadline, by
 * adding the timeout header of its protocol before connect reads the request. connect
 * applies `maxTimeoutMs` only to timeouts a client asks for (it refuses larger ones), so
 * without this a call with no Connect-Timeout-Ms or grpc-timeout runs for as long as its work
 * takes. The handler then sees the deadline like any other (`ctx.timeoutMs()`, the signal),
 * and passes what is left of it on to the calls it makes. Streaming calls are left alone: a
 * subscription is meant to stay open for as long as its client wants it.
 */
export function applyDefaultTimeout(headers: IncomingHttpHeaders, maxTimeoutMs: number): void {
  if (headers["connect-timeout-ms"] !== undefined || headers["grpc-timeout"] !== undefined) return;
  if (headers["content-type"]?.startsWith("application/grpc")) {
    // gRPC and gRPC-Web: at most 8 digits and a unit.
    headers["grpc-timeout"] = `${Math.min(maxTimeoutMs, 99_999_999)}m`;
  } else {
    headers["connect-timeout-ms"] = String(maxTimeoutMs);
  }
}
