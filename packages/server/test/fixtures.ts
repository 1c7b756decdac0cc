import http2 from "node:http2";
import { setTimeout as delay } from "node:timers/promises";
import { Code, ConnectError, type ConnectRouter } from "@connectrpc/connect";
import { WorkerService } from "@quartet/proto/quartet/worker/v1/worker_pb";
import { pino } from "pino";
import { type ServeOptions, type Server, serve } from "../src/index.ts";

/** A small WorkerService: Compute echoes the input as the digest after fault.delay_ms. */
export function testRoutes(router: ConnectRouter): void {
  router.service(WorkerService, {
    async compute(req, ctx) {
      if (req.fault?.delayMs) await delay(req.fault.delayMs, undefined, { signal: ctx.signal });
      return { digest: req.input, iterations: req.iterations, workerId: "test" };
    },
    async *watch(req) {
      for (let step = 1; step <= req.steps; step++) yield { step, totalSteps: req.steps };
    },
  });
}

/** serve() on a free loopback port with test routes and silent logs. */
export function serveForTest(options: Partial<ServeOptions> = {}): Promise<Server> {
  return serve({ name: "test", routes: testRoutes, logger: pino({ level: "silent" }), ...options });
}

/** What a client receives for one call: the response headers, body bytes and trailers. */
export interface RawAnswer {
  head: http2.IncomingHttpHeaders;
  body: Buffer;
  trailers: http2.IncomingHttpHeaders;
}

/**
 * One gRPC call as raw HTTP/2 (so a test can send what no client library would): POSTs
 * `body` written as the given chunks to `path`, and resolves once the stream has closed.
 */
export async function rawGrpc(
  url: string,
  path: string,
  chunks: Uint8Array[],
  headers: Record<string, string> = {},
): Promise<RawAnswer> {
  const session = http2.connect(url);
  try {
    const stream = session.request({
      ":method": "POST",
      ":path": path,
      "content-type": "application/grpc",
      te: "trailers",
      ...headers,
    });
    for (const chunk of chunks) stream.write(chunk);
    stream.end();
    const body: Buffer[] = [];
    let head: http2.IncomingHttpHeaders = {};
    let trailers: http2.IncomingHttpHeaders = {};
    stream.on("response", (h) => (head = h));
    stream.on("trailers", (t) => (trailers = t));
    stream.on("data", (c: Buffer) => body.push(c));
    await new Promise((resolve) => stream.on("close", resolve));
    return { head, body: Buffer.concat(body), trailers: { ...trailers } };
  } finally {
    session.close();
  }
}

/** The gRPC status of an answer: from its trailers, or its headers when trailers-only. */
export function grpcStatus(answer: RawAnswer): { code: string; message: string } {
  const from = answer.trailers["grpc-status"] !== undefined ? answer.trailers : answer.head;
  return {
    code: String(from["grpc-status"]),
    message: decodeURIComponent(String(from["grpc-message"] ?? "")),
  };
}

/** Handlers of calls that wait to be cancelled, by input: how their signal was aborted. */
export const cancelled = new Map<string, (reason: unknown) => void>();
export const started = new Map<string, () => void>();

/**
 * The WorkerService the fast-path tests send to serve() and to a bare connect-node server:
 * Compute sets a response header and trailer, fails, crashes, describes its context, or waits
 * to be cancelled, by its input.
 */
export const compareRoutes = (router: ConnectRouter) =>
  router.service(WorkerService, {
    async compute(req, ctx) {
      ctx.responseHeader.set("x-header", "h");
      ctx.responseTrailer.set("x-trailer", "t");
      if (req.input === "fail") {
        throw new ConnectError("refused", Code.FailedPrecondition, { "x-error-meta": "m" });
      }
      if (req.input === "crash") throw new Error("a bug");
      if (req.input === "context") {
        // What a handler reads of its call (the URL without the port, which differs).
        const url = new URL(ctx.url);
        const timeoutMs = ctx.timeoutMs();
        const seen = {
          url: `${url.protocol}//${url.hostname}${url.pathname}`,
          requestMethod: ctx.requestMethod,
          protocolName: ctx.protocolName,
          header: ctx.requestHeader.get("x-test"),
          contentType: ctx.requestHeader.get("content-type"),
          pseudoHeaders: [...ctx.requestHeader.keys()].filter((k) => k.startsWith(":")),
          deadline: timeoutMs !== undefined && timeoutMs > 4000 && timeoutMs <= 5000,
          aborted: ctx.signal.aborted,
          service: ctx.service.typeName,
          method: ctx.method.name,
        };
        return { digest: JSON.stringify(seen), workerId: "w" };
      }
      if (cancelled.has(req.input)) {
        started.get(req.input)?.();
        await new Promise((resolve) => ctx.signal.addEventListener("abort", resolve));
        cancelled.get(req.input)?.(ctx.signal.reason);
      }
      return { digest: req.input.repeat(Math.max(1, req.iterations)), workerId: "w" };
    },
  });
