import type http from "node:http";
import http2 from "node:http2";
import { Code, ConnectError } from "@connectrpc/connect";
import { codeFromHttpStatus, codeFromString } from "@connectrpc/connect/protocol-connect";
import { context, propagation, SpanKind, SpanStatusCode, trace } from "@opentelemetry/api";
import { hashString, type Lease } from "@quartet/balancer";
import {
  endCallWithError,
  forgetClosedStream,
  type NodeHandler,
  TokenBucket,
} from "@quartet/server";
import { type Dispatcher, errors } from "undici";
import type { MethodInfo } from "./methods.ts";
import type { Route } from "./route.ts";
import type { Upstream } from "./upstream.ts";

type Request = http.IncomingMessage | http2.Http2ServerRequest;
type Response = http.ServerResponse | http2.Http2ServerResponse;

export interface ProxyOptions {
  routes: ReadonlyMap<string, Route>;
  methods: ReadonlyMap<string, MethodInfo>;
  /** Largest request the gateway holds to be able to retry it. */
  maxRequestBytes: number;
  maxAttempts: number;
  rateLimit?: { perSecond: number; burst: number; keyHeader?: string };
  /** The REST tier: true when it took the request. */
  rest?: (req: Request, res: Response) => boolean;
  /** Answers a path that is neither REST nor RPC (404 naming the REST routes). */
  notFound?: (req: Request, res: Response) => void;
}

const hopByHop = new Set([
  "connection",
  "keep-alive",
  "proxy-connection",
  "transfer-encoding",
  "upgrade",
  "host",
  "http2-settings",
  "te",
  // Node's server answers it before the body arrives; the gateway sends the body whole.
  "expect",
]);

const tracer = trace.getTracer("@quartet/balancer-service");

/**
 * Why a call stops before its answer: the caller went away, or its deadline passed. A plain
 * object rather than an AbortController, whose abort() builds a DOMException and dispatches
 * an Event: the gateway's response closes after every call, and that cost 5-8% of its CPU.
 */
class Cancellation {
  reason: "caller" | "deadline" | undefined;
  #listener: (() => void) | undefined;

  cancel(reason: "caller" | "deadline"): void {
    if (this.reason !== undefined) return;
    this.reason = reason;
    const listener = this.#listener;
    this.#listener = undefined;
    listener?.();
  }

  /** One attempt at a time listens: the listener of the one before is replaced. */
  listen(listener: (() => void) | undefined): void {
    this.#listener = listener;
  }
}

/** What one attempt on one endpoint came to. */
type Outcome =
  | { kind: "answered"; error: ConnectError | undefined }
  | { kind: "failed"; error: ConnectError; retryable: boolean };

/** The backend answered an HTTP/1.1 request with something else: it speaks only HTTP/2. */
const notHttp1 = Symbol("not HTTP/1.1");

/** Node's incoming and outgoing header objects, HTTP/1.1 or HTTP/2 (not Fetch's Headers). */
type HeaderMap = Record<string, string | string[] | undefined>;

/** An attempt ended by the call's cancellation: forward() says why (caller or deadline). */
const cancelled: Outcome = {
  kind: "failed",
  error: new ConnectError("aborted", Code.DeadlineExceeded),
  retryable: false,
};

/**
 * The gateway's proxy: picks an endpoint of the route named by the path's service, forwards
 * the request (headers rewritten, body as bytes) and streams the answer back. Unary calls in
 * the Connect or gRPC-Web protocol go to the backend over keep-alive HTTP/1.1, whatever the
 * caller speaks: a backend answers an HTTP/1.1 exchange for about half the CPU of an HTTP/2
 * stream, and Node's HTTP/1.1 client (undici) costs the gateway less than its HTTP/2 one
 * (BENCHMARKS.md, gateway). Streams and gRPC (which needs HTTP trailers) go over h2c.
 */
export function createProxy(options: ProxyOptions): NodeHandler {
  const buckets = new Map<string, TokenBucket>();
  const limited = (req: Request): boolean => {
    const limit = options.rateLimit;
    if (!limit) return false;
    const header = limit.keyHeader && req.headers[limit.keyHeader];
    const key = typeof header === "string" ? `h:${header}` : `a:${req.socket?.remoteAddress}`;
    let bucket = buckets.get(key);
    if (!bucket) {
      if (buckets.size > 100_000) buckets.clear();
      // Bounded above: a crowd of addresses cannot grow the table without end.
      bucket = new TokenBucket(limit.burst, (limit.burst / limit.perSecond) * 1000);
      buckets.set(key, bucket);
    }
    return !bucket.take();
  };

  return (req, res) => {
    const url = req.url ?? "/";
    const path = url.split("?", 1)[0]!;
    // A procedure path's service is fully qualified (has a dot); /v1/compute is REST.
    const match = /^\/([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+)\/([A-Za-z_]\w*)$/.exec(path);
    // Every call a client makes counts against its rate, REST, RPC or a route that is not there.
    if (limited(req)) {
      endCallWithError(
        req,
        res,
        new ConnectError(
          "rate limit of this client spent at the gateway; slow down and retry",
          Code.ResourceExhausted,
        ),
      );
      return;
    }
    if (!match && options.rest?.(req, res)) return;
    if (!match && options.notFound) return options.notFound(req, res);
    const route = match ? options.routes.get(match[1]!) : undefined;
    if (!route) {
      const known = [...options.routes.keys()].join(", ") || "none";
      endCallWithError(
        req,
        res,
        new ConnectError(
          match
            ? `the gateway has no route for service ${match[1]}; known routes: ${known}`
            : `${path} is not a procedure path (/package.Service/Method); known routes: ${known}`,
          Code.Unimplemented,
        ),
      );
      return;
    }
    const parent = propagation.extract(context.active(), req.headers);
    const span = tracer.startSpan(
      `gateway ${path.slice(1)}`,
      { kind: SpanKind.SERVER, attributes: { "rpc.service": route.config.service } },
      parent,
    );
    void forward(
      req,
      res,
      route,
      options.methods.get(path),
      options,
      trace.setSpan(parent, span),
    ).then((error) => {
      if (error) span.setStatus({ code: SpanStatusCode.ERROR, message: error.message });
      span.end();
    });
  };
}

async function forward(
  req: Request,
  res: Response,
  route: Route,
  method: MethodInfo | undefined,
  options: ProxyOptions,
  ctx: ReturnType<typeof context.active>,
): Promise<ConnectError | undefined> {
  const start = performance.now();
  const timeoutMs = Math.min(requestedTimeoutMs(req) ?? Infinity, route.config.timeoutMs);
  const deadline = start + timeoutMs;
  const cancellation = new Cancellation();
  res.once("close", () => cancellation.cancel("caller"));
  const timer = setTimeout(() => cancellation.cancel("deadline"), timeoutMs);
  const fail = (error: ConnectError) => {
    clearTimeout(timer);
    endCallWithError(req, res, error);
    return error;
  };

  // A single-message request (or a GET) is held whole, so it can be sent again.
  let body: Buffer | undefined;
  if (req.method === "GET") body = empty;
  else if (method?.singleRequest) {
    const read = await readBody(req, options.maxRequestBytes + 5);
    if (read instanceof ConnectError) return fail(read);
    body = read;
  }

  const keyHeader = route.config.hashHeader && req.headers[route.config.hashHeader];
  const hash = typeof keyHeader === "string" ? hashString(keyHeader) : undefined;
  const tried = new Set<Lease["endpoint"]>();
  let last: ConnectError | undefined;
  for (let attempt = 0; attempt < options.maxAttempts; attempt++) {
    if (cancellation.reason !== undefined) break;
    const lease = route.pool.pick(hash, tried);
    if (!lease) break;
    tried.add(lease.endpoint);
    const upstream = route.upstream(lease.endpoint);
    const leaseStart = performance.now();
    const finish = (error: ConnectError | undefined) => {
      route.pool.release(lease, error);
      route
        .figures(lease.endpoint.id)
        .record(
          performance.now() - leaseStart,
          error !== undefined && error.code !== Code.Canceled,
          Date.now(),
        );
    };
    let outcome: Outcome | typeof notHttp1 | undefined;
    if (upstream?.speaksHttp1 && body !== undefined && overHttp1(req, method)) {
      outcome = await exchangeHttp1(
        req,
        res,
        upstream,
        body,
        method?.idempotent === true,
        deadline,
        cancellation,
        ctx,
      );
      // The backend never took that request: it goes to the same backend over h2c.
      if (outcome === notHttp1) upstream.speaksHttp1 = false;
    }
    if (outcome === undefined || outcome === notHttp1) {
      let session = upstream?.current();
      try {
        if (!upstream) throw new Error("endpoint removed");
        session ??= await upstream.session();
      } catch (e) {
        // Nothing was sent: any call may go to another endpoint.
        last = unreachable(lease.endpoint.address, route, e);
        finish(last);
        continue;
      }
      outcome = await exchange(
        req,
        res,
        session,
        lease.endpoint.address,
        body,
        method,
        deadline,
        cancellation,
        ctx,
      );
    }
    if (outcome.kind === "answered") {
      finish(outcome.error);
      clearTimeout(timer);
      return outcome.error;
    }
    finish(outcome.error);
    last = outcome.error;
    if (!outcome.retryable) break;
  }
  if (cancellation.reason !== undefined) {
    return fail(
      cancellation.reason === "deadline"
        ? new ConnectError(
            `deadline of ${Math.round(timeoutMs)} ms passed at the gateway (caller's deadline or the route's cap of ${route.config.timeoutMs} ms)`,
            Code.DeadlineExceeded,
          )
        : new ConnectError("the caller cancelled", Code.Canceled),
    );
  }
  return fail(
    (last &&
      new ConnectError(
        `${route.config.service}: ${last.rawMessage} (tried ${tried.size} endpoint(s))`,
        last.code,
      )) ??
      new ConnectError(
        `no healthy endpoint for ${route.config.service} (${route.pool.endpoints().length} known, all unhealthy, ejected, drained or already tried)`,
        Code.Unavailable,
      ),
  );
}

function unreachable(address: string, route: Route, e: unknown): ConnectError {
  return new ConnectError(
    `backend ${address} of ${route.config.service} cannot be reached: ${(e as Error).message}`,
    Code.Unavailable,
  );
}

/**
 * Whether a call goes to its backend over HTTP/1.1: a unary call (or a Connect GET), whatever
 * the caller speaks, in a protocol that needs no HTTP trailers (not gRPC).
 */
function overHttp1(req: Request, method: MethodInfo | undefined): boolean {
  if (method === undefined || method.method.methodKind !== "unary") return false;
  const type = String(req.headers["content-type"] ?? "");
  return !type.startsWith("application/grpc") || type.startsWith("application/grpc-web");
}

/** Errors of undici's that mean the request never left: any call may go elsewhere. */
const notConnected = new Set([
  "ECONNREFUSED",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "ENOTFOUND",
  "UND_ERR_CONNECT_TIMEOUT",
]);

/**
 * One unary call to one backend over keep-alive HTTP/1.1, its answer held whole and relayed
 * with its length. `notHttp1` when the backend answered with something that is not HTTP/1.1.
 */
function exchangeHttp1(
  req: Request,
  res: Response,
  upstream: Upstream,
  body: Buffer,
  idempotent: boolean,
  deadline: number,
  cancellation: Cancellation,
  ctx: ReturnType<typeof context.active>,
): Promise<Outcome | typeof notHttp1> {
  const address = upstream.address;
  const headers = forwardedHeaders(req, deadline, ctx);
  // undici writes the length of the body it sends (and skips a header set to undefined).
  headers["content-length"] = undefined;
  return new Promise((resolve) => {
    let status = 0;
    let responseHeaders: HeaderMap = {};
    const held: Buffer[] = [];
    let controller: Dispatcher.DispatchController | undefined;
    let settled = false;
    const settle = (outcome: Outcome | typeof notHttp1) => {
      settled = true;
      cancellation.listen(undefined);
      resolve(outcome);
    };
    const abort = () => controller?.abort(new Error("cancelled at the gateway"));
    // Settled at once, even while the request waits in the pool for a connection.
    cancellation.listen(() => {
      abort();
      settle(cancelled);
    });
    const handler: Dispatcher.DispatchHandler = {
      onRequestStart(c) {
        controller = c;
        if (settled) abort();
      },
      onResponseStart(_controller, statusCode, h) {
        status = statusCode;
        responseHeaders = h;
      },
      onResponseData(_controller, chunk) {
        held.push(chunk);
      },
      onResponseEnd() {
        if (settled) return;
        const error = statusOf(status, responseHeaders, {}, held);
        if (idempotent && error?.code === Code.Unavailable) {
          settle({ kind: "failed", error, retryable: true });
          return;
        }
        const answer = held.length === 1 ? held[0]! : Buffer.concat(held);
        const out = clean(responseHeaders);
        out["content-length"] = String(answer.length);
        writeHead(res, status, out);
        res.end(answer);
        settle({ kind: "answered", error });
      },
      onResponseError(_controller, e) {
        if (settled) return;
        if (status === 0 && e instanceof errors.HTTPParserError) {
          settle(notHttp1);
          return;
        }
        const code = (e as { code?: string }).code ?? "";
        const error = new ConnectError(
          `backend ${address} ${status === 0 ? "closed the connection before answering" : "broke off its answer"}: ${e.message}`,
          Code.Unavailable,
        );
        settle({ kind: "failed", error, retryable: notConnected.has(code) || idempotent });
      },
    };
    try {
      upstream.http1().dispatch(
        {
          method: (req.method ?? "POST") as Dispatcher.HttpMethod,
          path: req.url ?? "/",
          headers,
          body: body.length > 0 ? body : null,
        },
        handler,
      );
    } catch (e) {
      // A request undici refuses to send (a header it does not allow): no backend would.
      settle({
        kind: "failed",
        error: new ConnectError(`backend ${address}: ${(e as Error).message}`, Code.Unavailable),
        retryable: false,
      });
    }
  });
}

/**
 * Sends the call to one backend over h2c and relays its answer. A unary answer is held whole
 * before it is relayed, so a backend lost under it leaves the call free to go elsewhere.
 */
function exchange(
  req: Request,
  res: Response,
  session: http2.ClientHttp2Session,
  address: string,
  body: Buffer | undefined,
  method: MethodInfo | undefined,
  deadline: number,
  cancellation: Cancellation,
  ctx: ReturnType<typeof context.active>,
): Promise<Outcome> {
  const headers = requestHeaders(req, deadline, ctx);
  const holdAnswer =
    method?.method.methodKind === "unary" || (req.method === "GET" && method !== undefined);
  // Retrying is safe when the method has no side effects and the request is held.
  const idempotent = body !== undefined && method?.idempotent === true;
  return new Promise<Outcome>((resolve) => {
    let stream: http2.ClientHttp2Stream;
    try {
      stream = session.request(headers, { endStream: body !== undefined && body.length === 0 });
    } catch (e) {
      resolve({
        kind: "failed",
        error: new ConnectError(`backend ${address}: ${(e as Error).message}`, Code.Unavailable),
        retryable: body !== undefined,
      });
      return;
    }
    let responseHeaders: http2.IncomingHttpHeaders | undefined;
    let trailers: http2.IncomingHttpHeaders = {};
    let ended = false;
    let committed = false;
    const held: Buffer[] = [];
    cancellation.listen(() => stream.close(http2.constants.NGHTTP2_CANCEL));
    stream.on("error", () => {});
    if (body !== undefined) {
      if (body.length > 0) stream.end(body);
    } else {
      (req as NodeJS.ReadableStream).pipe(stream);
      req.on("error", () => stream.close(http2.constants.NGHTTP2_CANCEL));
    }
    const commit = () => {
      committed = true;
      writeHead(res, Number(responseHeaders![":status"]), clean(responseHeaders!));
    };
    stream.on("response", (h) => {
      responseHeaders = h;
      if (!holdAnswer) commit();
    });
    stream.on("data", (chunk: Buffer) => {
      if (committed) (res as http.ServerResponse).write(chunk);
      else held.push(chunk);
    });
    stream.on("trailers", (t) => {
      trailers = t;
    });
    stream.on("end", () => {
      ended = true;
    });
    stream.on("close", () => {
      forgetClosedStream(stream);
      cancellation.listen(undefined);
      if (cancellation.reason !== undefined && !ended) {
        resolve(cancelled);
        return;
      }
      // Node may end a stream the peer reset; only a clean close is a whole answer.
      const wholeAnswer = ended && (stream.rstCode ?? 0) === http2.constants.NGHTTP2_NO_ERROR;
      if (wholeAnswer && responseHeaders) {
        const error = statusOf(Number(responseHeaders[":status"]), responseHeaders, trailers, held);
        if (!committed && idempotent && error?.code === Code.Unavailable) {
          resolve({ kind: "failed", error, retryable: true });
          return;
        }
        const t = clean(trailers);
        const hasTrailers = Object.keys(t).length > 0;
        // Only an answer held whole has chunks here; a streamed one wrote them as they came.
        const answer = held.length === 1 ? held[0]! : Buffer.concat(held);
        if (!committed) {
          // Its length lets HTTP/1.1 send the answer in one write instead of chunked
          // (trailers still need chunked encoding there).
          if (!hasTrailers && responseHeaders["content-length"] === undefined)
            responseHeaders["content-length"] = String(answer.length);
          commit();
        }
        if (hasTrailers) res.addTrailers(t);
        if (answer.length > 0) res.end(answer);
        else res.end();
        resolve({ kind: "answered", error });
        return;
      }
      const refused = stream.rstCode === http2.constants.NGHTTP2_REFUSED_STREAM;
      const error = new ConnectError(
        `backend ${address} ${responseHeaders ? "reset the stream mid-response" : "closed the stream before answering"} (HTTP/2 code ${stream.rstCode})`,
        Code.Unavailable,
      );
      if (committed) {
        endCallWithError(req, res, error);
        resolve({ kind: "answered", error });
        return;
      }
      resolve({ kind: "failed", error, retryable: body !== undefined && (refused || idempotent) });
    });
  });
}

const empty = Buffer.alloc(0);

/**
 * Reads a request body whole, with listeners rather than an async iterator (a promise per
 * chunk); a ConnectError when it is larger than `maxBytes` or the request ends before it.
 */
function readBody(req: Request, maxBytes: number): Promise<Buffer | ConnectError> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let bytes = 0;
    const done = (result: Buffer | ConnectError) => {
      req.off("data", onData);
      req.off("end", onEnd);
      req.off("error", onCancelled);
      req.off("close", onClose);
      resolve(result);
    };
    const onData = (chunk: Buffer) => {
      bytes += chunk.length;
      if (bytes > maxBytes) {
        done(
          new ConnectError(
            `request body is larger than ${maxBytes - 5} bytes`,
            Code.ResourceExhausted,
          ),
        );
        // The rest is not wanted: drop it as it comes, so the connection stays usable.
        req.resume();
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = () => done(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, bytes));
    const onCancelled = () =>
      done(new ConnectError("the request ended before its body arrived", Code.Canceled));
    const onClose = () => {
      if (!req.complete) onCancelled();
    };
    req.on("data", onData);
    req.once("end", onEnd);
    req.once("error", onCancelled);
    req.once("close", onClose);
  });
}

function requestHeaders(
  req: Request,
  deadline: number,
  ctx: ReturnType<typeof context.active>,
): http2.OutgoingHttpHeaders {
  const out: http2.OutgoingHttpHeaders = {
    ":method": req.method ?? "POST",
    ":path": req.url ?? "/",
    ...forwardedHeaders(req, deadline, ctx),
  };
  const type = String(req.headers["content-type"] ?? "");
  if (type.startsWith("application/grpc") && !type.startsWith("application/grpc-web"))
    out.te = "trailers";
  return out;
}

/**
 * The caller's headers as the backend gets them: hop-by-hop ones dropped, the deadline left
 * (the caller's, capped by the route), the caller's address and the gateway's span added.
 */
function forwardedHeaders(
  req: Request,
  deadline: number,
  ctx: ReturnType<typeof context.active>,
): HeaderMap {
  const out: HeaderMap = clean(req.headers);
  const type = String(req.headers["content-type"] ?? "");
  const remaining = Math.max(1, Math.floor(deadline - performance.now()));
  if (Number.isFinite(deadline)) {
    if (type.startsWith("application/grpc")) out["grpc-timeout"] = `${remaining}m`;
    else {
      delete out["grpc-timeout"];
      out["connect-timeout-ms"] = String(remaining);
    }
  }
  const forwardedFor = req.socket?.remoteAddress;
  if (forwardedFor) out["x-forwarded-for"] = forwardedFor;
  propagation.inject(ctx, out);
  return out;
}

/** The call's outcome as the backend told it, for the endpoint's breaker and figures. */
function statusOf(
  status: number,
  headers: HeaderMap,
  trailers: HeaderMap,
  body: Buffer[],
): ConnectError | undefined {
  const grpc = trailers["grpc-status"] ?? headers["grpc-status"];
  if (grpc !== undefined) {
    const code = Number(grpc);
    return code === 0
      ? undefined
      : new ConnectError(
          String(trailers["grpc-message"] ?? headers["grpc-message"] ?? ""),
          code as Code,
        );
  }
  if (status === 200) return undefined;
  let code = codeFromHttpStatus(status);
  try {
    const parsed = JSON.parse(Buffer.concat(body).toString()) as {
      code?: string;
      message?: string;
    };
    code = (parsed.code && codeFromString(parsed.code)) || code;
    return new ConnectError(parsed.message ?? "", code);
  } catch {
    return new ConnectError(`HTTP ${status}`, code);
  }
}

/** Headers as they go on to the other side: without pseudo-headers and hop-by-hop ones. */
function clean(headers: HeaderMap): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const name in headers) {
    const value = headers[name];
    if (value === undefined || name.startsWith(":") || hopByHop.has(name)) continue;
    out[name] = value;
  }
  return out;
}

function writeHead(
  res: Response,
  status: number,
  headers: Record<string, string | string[]>,
): void {
  (res as http.ServerResponse).writeHead(status, headers);
}

function requestedTimeoutMs(req: Request): number | undefined {
  const grpc = req.headers["grpc-timeout"];
  if (typeof grpc === "string") {
    const m = /^(\d{1,8})([HMSmun])$/.exec(grpc);
    if (!m) return undefined;
    const unit = { H: 3_600_000, M: 60_000, S: 1000, m: 1, u: 0.001, n: 0.000001 }[m[2] as "H"];
    return Number(m[1]) * unit;
  }
  const connect = req.headers["connect-timeout-ms"];
  if (typeof connect === "string" && /^\d{1,10}$/.test(connect)) return Number(connect);
  return undefined;
}
