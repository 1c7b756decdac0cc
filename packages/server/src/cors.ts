import type { IncomingMessage, ServerResponse } from "node:http";
import type { Http2ServerRequest, Http2ServerResponse } from "node:http2";

/**
 * Origins browsers may call from: exact origins, or with `*` standing for any port (`:*`,
 * digits only) or for one host label (`*.example.com`, letters, digits and hyphens only).
 */
export type AllowedOrigins = readonly string[];

/** By default only pages served from this machine may call. */
export const localhostOrigins: AllowedOrigins = [
  "http://localhost:*",
  "https://localhost:*",
  "http://127.0.0.1:*",
  "https://127.0.0.1:*",
  "http://[::1]:*",
  "https://[::1]:*",
];

// What Connect, gRPC-Web and trace propagation send, and what clients must read back.
const allowedHeaders = [
  "Content-Type",
  "Connect-Protocol-Version",
  "Connect-Timeout-Ms",
  "Connect-Accept-Encoding",
  "Connect-Content-Encoding",
  "Grpc-Timeout",
  "Grpc-Accept-Encoding",
  "Grpc-Encoding",
  "X-Grpc-Web",
  "X-User-Agent",
  "Authorization",
  "Quartet-Client-Id",
  "Traceparent",
  "Tracestate",
  "Baggage",
].join(", ");
const exposedHeaders = [
  "Grpc-Status",
  "Grpc-Message",
  "Grpc-Status-Details-Bin",
  "Content-Encoding",
  "Connect-Content-Encoding",
  "Traceparent",
].join(", ");

type Req = IncomingMessage | Http2ServerRequest;
type Res = ServerResponse | Http2ServerResponse;

/**
 * Returns a function that applies CORS to a request and reports whether it answered it
 * (a preflight, or a refused origin). Requests without an Origin header are not CORS requests.
 */
export function createCors(origins: AllowedOrigins): (req: Req, res: Res) => boolean {
  const patterns = origins.map(toPattern);
  const allowed = (origin: string) => patterns.some((p) => p.test(origin));
  return (req, res) => {
    const origin = req.headers.origin;
    if (origin === undefined) return false;
    if (!allowed(origin)) {
      res.statusCode = 403;
      res.setHeader("content-type", "text/plain; charset=utf-8");
      res.setHeader("vary", "Origin");
      res.end(
        `origin ${origin} is not allowed; add it to the server's allowed origins (QUARTET_CORS_ORIGINS)\n`,
      );
      return true;
    }
    res.setHeader("access-control-allow-origin", origin);
    res.setHeader("vary", "Origin");
    if (req.method === "OPTIONS" && req.headers["access-control-request-method"] !== undefined) {
      res.statusCode = 204;
      // Connect and gRPC-Web use GET and POST; the gateway's REST tier also PUT, PATCH, DELETE.
      res.setHeader("access-control-allow-methods", "GET, POST, PUT, PATCH, DELETE");
      res.setHeader("access-control-allow-headers", allowedHeaders);
      res.setHeader("access-control-max-age", "7200");
      res.end();
      return true;
    }
    res.setHeader("access-control-expose-headers", exposedHeaders);
    return false;
  };
}

// A wildcard never spans a dot or a colon: `http://localhost:*` must not take
// `http://localhost:3000.evil.example`, nor `https://*.example.com` take `a.evil.test/.example.com`.
function toPattern(origin: string): RegExp {
  const escaped = origin
    .replace(/[.+?^${}()|[\]\\]/g, "\\$&")
    .replace(/:\*$/, ":[0-9]{1,5}")
    .replace(/\*/g, "[a-z0-9-]+");
  return new RegExp(`^${escaped}$`, "i");
}
