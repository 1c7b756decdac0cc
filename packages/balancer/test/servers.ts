import { once } from "node:events";
import * as http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { setTimeout as delay } from "node:timers/promises";
import { create } from "@bufbuild/protobuf";
import {
  type Code,
  ConnectError,
  type ConnectRouter,
  type HandlerContext,
} from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import {
  Health,
  type HealthCheckResponse,
  HealthCheckResponse_ServingStatus,
  HealthCheckResponseSchema,
} from "@quartet/proto/health/v1/health_pb";
import { ComputeResponseSchema, WorkerService } from "@quartet/proto/quartet/worker/v1/worker_pb";

export interface TestServer {
  readonly id: string;
  readonly url: string;
  /** Calls that reached the Compute handler. */
  computeCalls: number;
  /** Request headers of the last Compute call. */
  lastHeaders: Headers | undefined;
  /** Remaining deadline the last Compute call saw, if any. */
  lastTimeoutMs: number | undefined;
  /** When set, Compute fails with this code. */
  failing: Code | undefined;
  /** When set, Compute waits this long first (until the call is cancelled). */
  delayMs: number;
  /** Resolves when the next Compute call reaches the handler. */
  nextCompute(): Promise<void>;
  setStatus(status: HealthCheckResponse_ServingStatus): void;
  close(): Promise<void>;
  /** Drops every connection at once, as a crashed process would. */
  crash(): Promise<void>;
}

export interface TestServerOptions {
  /** Which grpc.health.v1 methods exist: both (default), check only, or none. */
  health?: "watch" | "check" | "none";
}

/**
 * An in-process h2c server with a WorkerService whose Compute honours `fault.delay_ms` and
 * `fault.fail_code`, and a controllable grpc.health.v1 service.
 */
export async function startTestServer(
  id: string,
  options: TestServerOptions = {},
): Promise<TestServer> {
  let status = HealthCheckResponse_ServingStatus.SERVING;
  const watchers = new Set<(r: HealthCheckResponse) => void>();
  const health = options.health ?? "watch";
  const state = {
    computeCalls: 0,
    lastHeaders: undefined as Headers | undefined,
    lastTimeoutMs: undefined as number | undefined,
    failing: undefined as Code | undefined,
    delayMs: 0,
    arrivals: [] as (() => void)[],
  };
  const routes = (router: ConnectRouter) => {
    router.service(WorkerService, {
      async compute(req, ctx: HandlerContext) {
        state.computeCalls++;
        state.lastHeaders = ctx.requestHeader;
        state.lastTimeoutMs = ctx.timeoutMs();
        for (const arrived of state.arrivals.splice(0)) arrived();
        if (state.delayMs > 0) await delay(state.delayMs, undefined, { signal: ctx.signal });
        if (state.failing !== undefined) throw new ConnectError(`${id} is failing`, state.failing);
        if (req.fault?.delayMs) await delay(req.fault.delayMs, undefined, { signal: ctx.signal });
        if (req.fault?.failCode)
          throw new ConnectError(`injected by ${id}`, req.fault.failCode as number as Code);
        return create(ComputeResponseSchema, { workerId: id, iterations: req.iterations });
      },
    });
    if (health === "none") return;
    router.service(Health, {
      check: () => create(HealthCheckResponseSchema, { status }),
      async *watch(_req, ctx) {
        if (health === "check") throw new ConnectError("watch not offered", 12 as Code);
        const queue: HealthCheckResponse[] = [create(HealthCheckResponseSchema, { status })];
        let wake: (() => void) | undefined;
        const push = (r: HealthCheckResponse) => {
          queue.push(r);
          wake?.();
        };
        watchers.add(push);
        try {
          while (!ctx.signal.aborted) {
            while (queue.length > 0) yield queue.shift()!;
            await new Promise<void>((resolve) => {
              wake = resolve;
              ctx.signal.addEventListener("abort", () => resolve(), { once: true });
            });
          }
        } finally {
          watchers.delete(push);
        }
      },
    });
  };
  const sessions = new Set<http2.ServerHttp2Session>();
  const server = http2.createServer(connectNodeAdapter({ routes }));
  server.on("session", (s) => {
    sessions.add(s);
    s.on("close", () => sessions.delete(s));
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const port = (server.address() as AddressInfo).port;
  const stop = async (graceful: boolean) => {
    const closed = new Promise((resolve) => server.close(resolve));
    for (const s of sessions) {
      if (graceful) s.close();
      else s.destroy();
    }
    await closed;
  };
  return {
    id,
    url: `http://127.0.0.1:${port}`,
    get computeCalls() {
      return state.computeCalls;
    },
    set computeCalls(n: number) {
      state.computeCalls = n;
    },
    get lastHeaders() {
      return state.lastHeaders;
    },
    get lastTimeoutMs() {
      return state.lastTimeoutMs;
    },
    get failing() {
      return state.failing;
    },
    set failing(code: Code | undefined) {
      state.failing = code;
    },
    get delayMs() {
      return state.delayMs;
    },
    set delayMs(ms: number) {
      state.delayMs = ms;
    },
    nextCompute: () => new Promise<void>((resolve) => state.arrivals.push(resolve)),
    setStatus(next) {
      status = next;
      for (const w of watchers) w(create(HealthCheckResponseSchema, { status }));
    },
    close: () => stop(true),
    crash: () => stop(false),
  } as TestServer;
}

/** A loopback URL where nothing listens: connecting is refused. */
export async function refusedUrl(): Promise<string> {
  const server = http2.createServer();
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const port = (server.address() as AddressInfo).port;
  await new Promise((resolve) => server.close(resolve));
  return `http://127.0.0.1:${port}`;
}
