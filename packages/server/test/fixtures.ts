import http2 from "node:http2";
import { setTimeout as delay } from "node:timers/promises";
import type { ConnectRouter } from "@connectrpc/connect";
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
