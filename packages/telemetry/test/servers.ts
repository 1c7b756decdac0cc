import { once } from "node:events";
import * as http from "node:http";
import * as http2 from "node:http2";
import type { AddressInfo } from "node:net";
import type { ConnectRouter, Interceptor, ServiceImpl } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import {
  InMemorySpanExporter,
  type ReadableSpan,
  type SpanProcessor,
} from "@opentelemetry/sdk-trace-base";
import { WorkerService } from "@quartet/proto/quartet/worker/v1/worker_pb";
import { createServerInterceptors } from "../src/index.ts";

export interface TestServer {
  /** Base URL, e.g. http://127.0.0.1:40123 */
  readonly url: string;
  readonly port: number;
  /** Requests that reached the HTTP server, before any Connect handling. */
  readonly requests: () => number;
  close(): Promise<void>;
}

/**
 * A real connect-node server on 127.0.0.1:0 serving WorkerService with the given
 * handlers and the telemetry server interceptors; h2c by default, HTTP/1.1 on request.
 */
export async function startWorkerServer(
  impl: Partial<ServiceImpl<typeof WorkerService>>,
  options: { httpVersion?: "1.1" | "2"; interceptors?: Interceptor[] } = {},
): Promise<TestServer> {
  const adapter = connectNodeAdapter({
    routes: (router: ConnectRouter) => router.service(WorkerService, impl),
    interceptors: options.interceptors ?? createServerInterceptors(),
  });
  let requests = 0;
  const counted = (
    req: http.IncomingMessage | http2.Http2ServerRequest,
    res: http.ServerResponse | http2.Http2ServerResponse,
  ) => {
    requests++;
    adapter(req, res);
  };
  const server =
    options.httpVersion === "1.1" ? http.createServer(counted) : http2.createServer(counted);
  const sessions = new Set<http2.ServerHttp2Session>();
  server.on("session", (session: http2.ServerHttp2Session) => {
    sessions.add(session);
    session.once("close", () => sessions.delete(session));
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    requests: () => requests,
    async close() {
      const closed = once(server, "close");
      server.close();
      if (server instanceof http.Server) server.closeAllConnections();
      for (const session of sessions) session.destroy();
      await closed;
    },
  };
}

/** A promise with its resolve function, for handlers to report what they saw. */
export function deferred<T = void>(): { promise: Promise<T>; resolve: (value: T) => void } {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

/**
 * Exports every ended span to an InMemorySpanExporter at once and wakes waiters on
 * each arrival, so tests wait on events rather than polling.
 */
export class SpanCollector implements SpanProcessor {
  readonly exporter = new InMemorySpanExporter();
  readonly #waiters = new Set<() => void>();

  get spans(): ReadableSpan[] {
    return this.exporter.getFinishedSpans();
  }

  onStart(): void {}

  onEnd(span: ReadableSpan): void {
    this.exporter.export([span], () => {});
    for (const waiter of this.#waiters) waiter();
  }

  /** Resolves with the matching spans once `predicate` holds for them. */
  waitFor(predicate: (spans: ReadableSpan[]) => boolean): Promise<ReadableSpan[]> {
    return new Promise((resolve) => {
      const check = () => {
        if (!predicate(this.spans)) return;
        this.#waiters.delete(check);
        resolve([...this.spans]);
      };
      this.#waiters.add(check);
      check();
    });
  }

  clear(): void {
    this.exporter.reset();
  }

  forceFlush(): Promise<void> {
    return Promise.resolve();
  }

  shutdown(): Promise<void> {
    return Promise.resolve();
  }
}
