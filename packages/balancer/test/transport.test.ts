import { create } from "@bufbuild/protobuf";
import { MethodOptions_IdempotencyLevel } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createClient, type Interceptor } from "@connectrpc/connect";
import { MeterProvider, MetricReader } from "@opentelemetry/sdk-metrics";
import { Health, HealthCheckResponse_ServingStatus } from "@quartet/proto/health/v1/health_pb";
import { ComputeRequestSchema, WorkerService } from "@quartet/proto/quartet/worker/v1/worker_pb";
import { afterEach, describe, expect, it } from "vitest";
import { createManualResolver, staticResolver } from "../src/resolver.ts";
import {
  type BalancedTransport,
  type BalancedTransportOptions,
  createBalancedTransport,
} from "../src/transport.ts";
import { refusedUrl, startTestServer, type TestServer } from "./servers.ts";
import { until } from "./until.ts";

const cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn();
});

async function servers(n: number, prefix = "w"): Promise<TestServer[]> {
  const list = await Promise.all(
    Array.from({ length: n }, (_, i) => startTestServer(`${prefix}${i + 1}`)),
  );
  cleanup.push(async () => {
    await Promise.all(list.map((s) => s.close()));
  });
  return list;
}

/** Endpoints named after the servers, so that round robin visits them in order w1, w2... */
function endpointsOf(list: TestServer[]) {
  return staticResolver(list.map((x) => ({ id: x.id, address: x.url })));
}

/** Round robin starts at the first endpoint (random() = 0), so the shares below are exact. */
function balanced(options: BalancedTransportOptions): BalancedTransport {
  const transport = createBalancedTransport({
    ...options,
    pickerOptions: { random: () => 0, ...options.pickerOptions },
  });
  cleanup.push(() => transport.close());
  return transport;
}

/** Compute without side effects (as declared) and the same method declared with side effects. */
const compute = WorkerService.method.compute;
const computeWithSideEffects = {
  ...compute,
  idempotency: MethodOptions_IdempotencyLevel.IDEMPOTENCY_UNKNOWN,
};

function call(
  t: BalancedTransport,
  method = compute,
  init = {},
  options: { timeoutMs?: number; header?: Record<string, string> } = {},
) {
  return t
    .unary(
      method,
      undefined,
      options.timeoutMs,
      options.header,
      create(ComputeRequestSchema, { iterations: 1, ...init }),
    )
    .then((res) => res.message.workerId);
}

function shares(ids: string[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const id of ids) counts[id] = (counts[id] ?? 0) + 1;
  return counts;
}

const quiet = { healthCheck: false, outlierDetection: false } as const;

describe("createBalancedTransport", () => {
  it("spreads calls over the endpoints as round robin says and counts them", async () => {
    const s = await servers(3);
    const t = balanced({ resolver: endpointsOf(s), ...quiet });
    const client = createClient(WorkerService, t);
    const ids = await Promise.all(
      Array.from({ length: 30 }, () => client.compute({ iterations: 1 })),
    );
    expect(shares(ids.map((r) => r.workerId))).toEqual({ w1: 10, w2: 10, w3: 10 });
    const stats = t.stats();
    expect(stats.map((x) => [x.total, x.inFlight, x.failures])).toEqual([
      [10, 0, 0],
      [10, 0, 0],
      [10, 0, 0],
    ]);
    expect(stats.every((x) => x.latencyEwmaMs > 0)).toBe(true);
  });

  it("speaks gRPC too", async () => {
    const s = await servers(2);
    const t = balanced({ resolver: endpointsOf(s), protocol: "grpc", ...quiet });
    const ids = await Promise.all(Array.from({ length: 4 }, () => call(t)));
    expect(shares(ids)).toEqual({ w1: 2, w2: 2 });
  });

  it("sends calls with the same hash key to the same endpoint", async () => {
    const s = await servers(3);
    const t = balanced({
      resolver: endpointsOf(s),
      picker: "ring_hash",
      hashKey: "x-user",
      ...quiet,
    });
    for (const user of ["alice", "bob", "carol"]) {
      const ids = await Promise.all(
        Array.from({ length: 5 }, () => call(t, compute, {}, { header: { "x-user": user } })),
      );
      expect(new Set(ids).size).toBe(1);
    }
    const spread = await Promise.all(
      Array.from({ length: 60 }, (_, i) =>
        call(t, compute, {}, { header: { "x-user": `user-${i}` } }),
      ),
    );
    expect(new Set(spread).size).toBe(3);
  });

  it("takes the hash key from a function of the request", async () => {
    const s = await servers(3);
    const t = balanced({
      resolver: endpointsOf(s),
      picker: "maglev",
      hashKey: (req) =>
        req.stream ? undefined : String((req.message as unknown as { input: string }).input),
      ...quiet,
    });
    const a = await Promise.all(
      Array.from({ length: 6 }, () => call(t, compute, { input: "same" })),
    );
    expect(new Set(a).size).toBe(1);
  });

  it("retries an idempotent call that failed Unavailable on another endpoint", async () => {
    const s = await servers(3);
    s[0]!.failing = Code.Unavailable;
    const t = balanced({ resolver: endpointsOf(s), ...quiet });
    const ids = await Promise.all(Array.from({ length: 12 }, () => call(t)));
    expect(ids).not.toContain("w1");
    expect(s[0]!.computeCalls).toBe(4);
    expect(t.stats()[0]!.failures).toBe(4);
  });

  it("does not retry a call with side effects that reached the server", async () => {
    const s = await servers(2);
    s[0]!.failing = Code.Unavailable;
    const t = balanced({ resolver: endpointsOf(s), ...quiet });
    const results = await Promise.allSettled(
      Array.from({ length: 4 }, () => call(t, computeWithSideEffects)),
    );
    const failed = results.filter((r) => r.status === "rejected");
    expect(failed.length).toBe(2);
    expect(ConnectError.from((failed[0] as PromiseRejectedResult).reason).code).toBe(
      Code.Unavailable,
    );
    expect(s[0]!.computeCalls + s[1]!.computeCalls).toBe(4);
  });

  it("retries even a call with side effects when the connection was refused (never sent)", async () => {
    const s = await servers(2);
    const dead = await refusedUrl();
    const t = balanced({
      resolver: staticResolver([
        { id: "w0", address: dead },
        ...s.map((x) => ({ id: x.id, address: x.url })),
      ]),
      ...quiet,
    });
    const ids = await Promise.all(Array.from({ length: 9 }, () => call(t, computeWithSideEffects)));
    expect(shares(ids)).toEqual({ w1: 5, w2: 4 });
    const deadStats = t.stats().find((x) => x.address === dead)!;
    expect(deadStats.failures).toBe(3);
  });

  it("retries an idempotent call whose connection died mid-call, but not one with side effects", async () => {
    const s = await servers(2);
    s[0]!.delayMs = 10_000; // w1 holds calls until it crashes
    const t = balanced({ resolver: endpointsOf(s), ...quiet });
    let arrived = s[0]!.nextCompute();
    const idempotent = call(t); // round robin: w1 first
    await arrived;
    await s[0]!.crash();
    expect(await idempotent).toBe("w2");

    const s2 = await servers(2, "v");
    s2[0]!.delayMs = 10_000;
    const t2 = balanced({ resolver: endpointsOf(s2), ...quiet });
    arrived = s2[0]!.nextCompute();
    // Catch at once: the call fails while the test is still awaiting the crash.
    const withSideEffects = call(t2, computeWithSideEffects).catch((e: unknown) => e);
    await arrived;
    await s2[0]!.crash();
    const err = ConnectError.from(await withSideEffects);
    expect(err.code).toBe(Code.Unavailable);
    expect(err.rawMessage).toMatch(/connection to .* lost/);
    expect(s2[1]!.computeCalls).toBe(0);
  });

  it("propagates the deadline: every attempt carries what remains of it", async () => {
    const s = await servers(2);
    s[0]!.failing = Code.Unavailable;
    const t = balanced({ resolver: endpointsOf(s), ...quiet });
    expect(await call(t, compute, {}, { timeoutMs: 5_000 })).toBe("w2");
    expect(s[0]!.lastTimeoutMs).toBeLessThanOrEqual(5_000);
    expect(s[1]!.lastTimeoutMs).toBeGreaterThan(0);
    expect(s[1]!.lastTimeoutMs).toBeLessThanOrEqual(s[0]!.lastTimeoutMs!);
    // A call that outlives its deadline fails DeadlineExceeded and is not retried.
    s[0]!.failing = undefined;
    const before = s[0]!.computeCalls + s[1]!.computeCalls;
    const err = await call(t, compute, { fault: { delayMs: 5_000 } }, { timeoutMs: 50 }).catch(
      (e) => e,
    );
    expect(ConnectError.from(err).code).toBe(Code.DeadlineExceeded);
    expect(s[0]!.computeCalls + s[1]!.computeCalls).toBe(before + 1);
  });

  it("runs interceptors once per call around all attempts, and they can add headers", async () => {
    const s = await servers(2);
    s[0]!.failing = Code.Unavailable;
    let runs = 0;
    let contentType: string | null = null;
    const tag: Interceptor = (next) => (req) => {
      runs++;
      contentType = req.header.get("content-type");
      req.header.set("x-tag", "from-interceptor");
      return next(req);
    };
    const t = balanced({ resolver: endpointsOf(s), interceptors: [tag], ...quiet });
    expect(await call(t)).toBe("w2");
    expect(runs).toBe(1);
    expect(contentType).toBe("application/proto");
    expect(s[0]!.lastHeaders!.get("x-tag")).toBe("from-interceptor");
    expect(s[1]!.lastHeaders!.get("x-tag")).toBe("from-interceptor");
  });

  it("applies resolver updates without dropping calls in flight", async () => {
    const s = await servers(3);
    const named = s.map((x) => ({ id: x.id, address: x.url }));
    const resolver = createManualResolver(named.slice(0, 2));
    const t = balanced({ resolver, ...quiet });
    const arrived = s[0]!.nextCompute();
    const held = call(t, compute, { fault: { delayMs: 200 } });
    await arrived;
    resolver.set(named.slice(1));
    const ids = await Promise.all(Array.from({ length: 6 }, () => call(t)));
    expect(shares(ids)).toEqual({ w2: 3, w3: 3 });
    expect(await held).toBe("w1");
    expect(t.stats().map((x) => x.id)).toEqual(["w2", "w3"]);
  });

  it("stops sending to an endpoint whose health check fails, and resumes when it passes", async () => {
    const s = await servers(3);
    const t = balanced({ resolver: endpointsOf(s), outlierDetection: false });
    const w1 = t.pool.get("w1")!;
    await until(t.pool, () => t.stats().every((x) => x.serving === true));
    s[0]!.setStatus(HealthCheckResponse_ServingStatus.NOT_SERVING);
    await until(t.pool, () => !w1.healthy);
    const ids = await Promise.all(Array.from({ length: 10 }, () => call(t)));
    expect(ids).not.toContain("w1");
    s[0]!.setStatus(HealthCheckResponse_ServingStatus.SERVING);
    await until(t.pool, () => w1.healthy);
    const again = await Promise.all(Array.from({ length: 9 }, () => call(t)));
    expect(shares(again)).toEqual({ w1: 3, w2: 3, w3: 3 });
  });

  it("ejects an endpoint that keeps failing (outlier detection)", async () => {
    const s = await servers(3);
    s[2]!.failing = Code.Internal;
    const t = balanced({
      resolver: endpointsOf(s),
      healthCheck: false,
      outlierDetection: { consecutiveFailures: 2, failureRate: false },
    });
    await Promise.allSettled(Array.from({ length: 6 }, () => call(t)));
    expect(t.pool.get("w3")!.healthy).toBe(false);
    const ids = await Promise.all(Array.from({ length: 6 }, () => call(t)));
    expect(shares(ids)).toEqual({ w1: 3, w2: 3 });
  });

  it("balances streaming calls and releases them when the stream ends", async () => {
    const s = await servers(2);
    const t = balanced({ resolver: endpointsOf(s), ...quiet });
    const health = createClient(Health, t);
    for (let i = 0; i < 2; i++) {
      // Watch never ends by itself: the caller stops it by aborting, as Connect clients do.
      const stop = new AbortController();
      for await (const res of health.watch({}, { signal: stop.signal })) {
        expect(res.status).toBe(HealthCheckResponse_ServingStatus.SERVING);
        break;
      }
      stop.abort();
    }
    expect(t.stats().map((x) => [x.total, x.inFlight])).toEqual([
      [1, 0],
      [1, 0],
    ]);
  });

  it("fails with Unavailable and says why when there is no endpoint", async () => {
    const t = balanced({ resolver: staticResolver([]), ...quiet });
    const err = ConnectError.from(await call(t).catch((e) => e));
    expect(err.code).toBe(Code.Unavailable);
    expect(err.rawMessage).toMatch(/no endpoints for quartet.worker.v1.WorkerService\/Compute/);
  });

  it("rejects, rather than throws, a call whose headers are invalid, with or without interceptors", async () => {
    for (const interceptors of [[], [((next) => next) as Interceptor]]) {
      const t = balanced({ resolver: staticResolver([]), healthCheck: false, interceptors });
      let pending: Promise<unknown> | undefined;
      expect(() => {
        pending = t.unary(compute, undefined, undefined, { "bad header": "x" }, {});
      }).not.toThrow();
      await expect(pending).rejects.toThrow();
    }
  });

  it("exports per-endpoint OTel metrics", async () => {
    const s = await servers(2);
    const reader = new (class extends MetricReader {
      protected async onForceFlush() {}
      protected async onShutdown() {}
    })();
    const meterProvider = new MeterProvider({ readers: [reader] });
    const t = balanced({ resolver: endpointsOf(s), meterProvider, name: "workers", ...quiet });
    await Promise.all(Array.from({ length: 4 }, () => call(t)));
    const { resourceMetrics } = await reader.collect();
    const all = resourceMetrics.scopeMetrics.flatMap((m) => m.metrics);
    const calls = all.find((m) => m.descriptor.name === "quartet.balancer.endpoint.calls")!;
    expect(calls.dataPoints.map((p) => [p.attributes["endpoint.id"], p.value])).toEqual([
      ["w1", 2],
      ["w2", 2],
    ]);
    const inFlight = all.find((m) => m.descriptor.name === "quartet.balancer.endpoint.in_flight")!;
    expect(
      inFlight.dataPoints.every(
        (p) => p.value === 0 && p.attributes["balancer.name"] === "workers",
      ),
    ).toBe(true);
    await meterProvider.shutdown();
  });
});
