// The Connect interceptor over Connect's in-memory router transport (real Connect protocol
// and serialization, no sockets): one breaker per target, fast Unavailable rejections that
// never reach the server, streams, OTel metrics and span events.
import {
  Code,
  ConnectError,
  createClient,
  createRouterTransport,
  type Interceptor,
} from "@connectrpc/connect";
import { context, trace } from "@opentelemetry/api";
import { AsyncLocalStorageContextManager } from "@opentelemetry/context-async-hooks";
import {
  type DataPoint,
  MeterProvider,
  MetricReader,
  type ResourceMetrics,
} from "@opentelemetry/sdk-metrics";
import {
  BasicTracerProvider,
  InMemorySpanExporter,
  SimpleSpanProcessor,
} from "@opentelemetry/sdk-trace-base";
import { FakeClock } from "@quartet/determinism/testing";
import { WorkerService } from "@quartet/proto/quartet/worker/v1/worker_pb";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  BreakerRejectedError,
  consecutiveFailures,
  createBreakerInterceptor,
  isBreakerRejection,
} from "../src/index.ts";

const T0 = Date.UTC(2025, 0, 1);

/** An in-memory WorkerService that fails with `failCode` when asked, and counts what it served. */
function worker(baseUrl: string, interceptors: Interceptor[]) {
  const served = { compute: 0, watch: 0 };
  const transport = createRouterTransport(
    (router) =>
      router.service(WorkerService, {
        compute(request) {
          served.compute++;
          const code = request.fault?.failCode ?? 0;
          if (code !== 0) throw new ConnectError("injected fault", code as number as Code);
          return { digest: "d", iterations: request.iterations, workerId: baseUrl };
        },
        async *watch(request) {
          served.watch++;
          for (let step = 1; step <= request.steps; step++) {
            if (step === 3 && request.iterationsPerStep === 666)
              throw new ConnectError("stream broke", Code.Unavailable);
            yield { step, totalSteps: request.steps, digest: "d" };
          }
        },
      }),
    { transport: { baseUrl, interceptors } },
  );
  return { client: createClient(WorkerService, transport), served };
}

const UNAVAILABLE = 14;
const INVALID_ARGUMENT = 3;

class TestReader extends MetricReader {
  protected override async onShutdown() {}
  protected override async onForceFlush() {}
}

function points(metrics: ResourceMetrics, name: string): DataPoint<number>[] {
  for (const scope of metrics.scopeMetrics)
    for (const metric of scope.metrics)
      if (metric.descriptor.name === name) return metric.dataPoints as DataPoint<number>[];
  return [];
}

describe("createBreakerInterceptor", () => {
  const contextManager = new AsyncLocalStorageContextManager();
  beforeAll(() => {
    context.setGlobalContextManager(contextManager.enable());
  });
  afterAll(() => {
    context.disable();
  });

  function setup(key: "host" | "host+method" = "host") {
    const clock = new FakeClock(T0);
    const reader = new TestReader();
    const meterProvider = new MeterProvider({ readers: [reader] });
    const interceptor = createBreakerInterceptor({
      key,
      clock,
      meterProvider,
      breaker: { trip: consecutiveFailures(2), resetTimeoutMs: 5000 },
    });
    const a = worker("http://a.test:7201", [interceptor]);
    const b = worker("http://b.test:7202", [interceptor]);
    return { clock, reader, interceptor, a, b };
  }

  const fail = { fault: { failCode: UNAVAILABLE } };

  it("trips the failing target only, then rejects fast with Unavailable before any I/O", async () => {
    const { clock, interceptor, a, b } = setup();
    for (let i = 0; i < 2; i++)
      await expect(a.client.compute(fail)).rejects.toMatchObject({ code: Code.Unavailable });
    expect(interceptor.breakers.get("a.test:7201")!.state).toBe("open");

    clock.advance(1500);
    const error = await a.client.compute({}).catch((e: unknown) => e);
    expect(a.served.compute).toBe(2); // the third call never reached the server
    expect(error).toBeInstanceOf(ConnectError);
    const connectError = error as ConnectError;
    expect(connectError.code).toBe(Code.Unavailable);
    expect(connectError.rawMessage).toBe(
      'circuit breaker "a.test:7201" is open; next probe at 2025-01-01T00:00:05.000Z (in 3500 ms)',
    );
    expect(connectError.cause).toBeInstanceOf(BreakerRejectedError);
    expect(isBreakerRejection(error)).toBe(true);
    expect(connectError.metadata.get("quartet-breaker-retry-after-ms")).toBe("3500");

    // The other host has its own breaker and is unaffected.
    await expect(b.client.compute({ iterations: 1 })).resolves.toMatchObject({ iterations: 1 });
    expect(interceptor.breakers.get("b.test:7202")!.state).toBe("closed");
    expect(isBreakerRejection(new ConnectError("down", Code.Unavailable))).toBe(false);
  });

  it("probes after the reset timeout and closes when the target answers", async () => {
    const { clock, interceptor, a } = setup();
    for (let i = 0; i < 2; i++) await a.client.compute(fail).catch(() => {});
    clock.advance(5000);
    await expect(a.client.compute({ iterations: 3 })).resolves.toMatchObject({ iterations: 3 });
    expect(interceptor.breakers.get("a.test:7201")!.state).toBe("closed");
  });

  it("does not trip on errors that are answers, like InvalidArgument", async () => {
    const { interceptor, a } = setup();
    for (let i = 0; i < 5; i++)
      await expect(
        a.client.compute({ fault: { failCode: INVALID_ARGUMENT } }),
      ).rejects.toMatchObject({ code: Code.InvalidArgument });
    expect(interceptor.breakers.get("a.test:7201")!.state).toBe("closed");
    expect(a.served.compute).toBe(5);
  });

  it("keys breakers by host and method when asked", async () => {
    const { interceptor, a } = setup("host+method");
    for (let i = 0; i < 2; i++) await a.client.compute(fail).catch(() => {});
    const computeKey = "a.test:7201/quartet.worker.v1.WorkerService/Compute";
    expect(interceptor.breakers.get(computeKey)!.state).toBe("open");
    // Watch on the same host has its own, closed breaker.
    const steps: number[] = [];
    for await (const m of a.client.watch({ steps: 2 })) steps.push(m.step);
    expect(steps).toEqual([1, 2]);
    expect([...interceptor.breakers.keys()].sort()).toEqual([
      computeKey,
      "a.test:7201/quartet.worker.v1.WorkerService/Watch",
    ]);
  });

  it("judges a streaming call when its stream ends: a broken stream is a failure", async () => {
    const { interceptor, a } = setup();
    const breaker = () => interceptor.breakers.get("a.test:7201")!;
    for await (const _ of a.client.watch({ steps: 4 })) {
    }
    expect(breaker().metrics()).toMatchObject({ successes: 1, failures: 0 });
    for (let i = 0; i < 2; i++) {
      const seen: number[] = [];
      const error = await (async () => {
        for await (const m of a.client.watch({ steps: 5, iterationsPerStep: 666 }))
          seen.push(m.step);
      })().catch((e: unknown) => e);
      expect(seen).toEqual([1, 2]);
      expect(error).toMatchObject({ code: Code.Unavailable });
    }
    expect(breaker().state).toBe("open");
    const rejected = await (async () => {
      for await (const _ of a.client.watch({ steps: 1 })) {
      }
    })().catch((e: unknown) => e);
    expect(isBreakerRejection(rejected)).toBe(true);
    expect(a.served.watch).toBe(3);
  });

  it("does not count a stream the client cancels early", async () => {
    const { interceptor, a } = setup();
    const controller = new AbortController();
    const seen: number[] = [];
    const error = await (async () => {
      for await (const m of a.client.watch({ steps: 10 }, { signal: controller.signal })) {
        seen.push(m.step);
        if (m.step === 2) controller.abort();
      }
    })().catch((e: unknown) => e);
    expect(seen).toEqual([1, 2]);
    expect(error).toMatchObject({ code: Code.Canceled });
    expect(interceptor.breakers.get("a.test:7201")!.metrics()).toMatchObject({
      successes: 0,
      failures: 0,
      ignored: 1,
      inFlight: 0,
    });
  });

  it("exports state, calls and transitions as OTel metrics per target", async () => {
    const { reader, a, b } = setup();
    await b.client.compute({});
    for (let i = 0; i < 2; i++) await a.client.compute(fail).catch(() => {});
    for (let i = 0; i < 3; i++) await a.client.compute({}).catch(() => {});
    const { resourceMetrics, errors } = await reader.collect();
    expect(errors).toEqual([]);
    const state = points(resourceMetrics, "quartet.breaker.state").map((p) => [
      p.attributes["breaker.target"],
      p.value,
    ]);
    expect(state).toEqual(
      expect.arrayContaining([
        ["a.test:7201", 2],
        ["b.test:7202", 0],
      ]),
    );
    const calls = points(resourceMetrics, "quartet.breaker.calls")
      .filter((p) => p.attributes["breaker.target"] === "a.test:7201")
      .map((p) => [p.attributes.outcome, p.value]);
    expect(calls).toEqual(
      expect.arrayContaining([
        ["success", 0],
        ["failure", 2],
        ["ignored", 0],
        ["rejected", 3],
      ]),
    );
    const transitions = points(resourceMetrics, "quartet.breaker.transitions").map((p) => [
      p.attributes["breaker.target"],
      p.attributes["breaker.from"],
      p.attributes["breaker.to"],
      p.value,
    ]);
    expect(transitions).toEqual([["a.test:7201", "closed", "open", 1]]);
  });

  it("records transitions and rejections as events on the active span", async () => {
    const { a } = setup();
    const exporter = new InMemorySpanExporter();
    const tracer = new BasicTracerProvider({
      spanProcessors: [new SimpleSpanProcessor(exporter)],
    }).getTracer("test");
    await tracer.startActiveSpan("caller", async (span) => {
      for (let i = 0; i < 3; i++) await a.client.compute(fail).catch(() => {});
      span.end();
    });
    const [span] = exporter.getFinishedSpans();
    expect(span!.events.map((e) => [e.name, e.attributes])).toEqual([
      [
        "quartet.breaker.state_change",
        {
          "breaker.target": "a.test:7201",
          "breaker.from": "closed",
          "breaker.to": "open",
          "breaker.reason": "2 consecutive failures (threshold 2)",
          "breaker.next_probe_at": "2025-01-01T00:00:05.000Z",
        },
      ],
      ["quartet.breaker.rejected", { "breaker.target": "a.test:7201", "breaker.state": "open" }],
    ]);
    expect(trace.getActiveSpan()).toBeUndefined();
  });

  describe("eviction of unused breakers", () => {
    function evicting(evict: { idleMs?: number; maxBreakers?: number }) {
      const clock = new FakeClock(T0);
      const interceptor = createBreakerInterceptor({
        clock,
        meterProvider: new MeterProvider(),
        evict,
        breaker: { trip: consecutiveFailures(2), resetTimeoutMs: 5000 },
      });
      const hosts = ["a", "b", "c"].map((h, i) =>
        worker(`http://${h}.test:720${i}`, [interceptor]),
      );
      return { clock, interceptor, a: hosts[0]!, b: hosts[1]!, c: hosts[2]! };
    }
    const keys = (interceptor: { breakers: ReadonlyMap<string, unknown> }) => [
      ...interceptor.breakers.keys(),
    ];

    it("forgets a closed breaker no call used for idleMs, on the injected clock", async () => {
      const { clock, interceptor, a, b } = evicting({ idleMs: 60_000 });
      await a.client.compute({});
      await b.client.compute({});
      clock.advance(30_000);
      await b.client.compute({});
      expect(keys(interceptor)).toEqual(["a.test:7200", "b.test:7201"]);
      clock.advance(31_000); // a idle for 61 s, b for 31 s
      await b.client.compute({});
      expect(keys(interceptor)).toEqual(["b.test:7201"]);
      await a.client.compute({}); // a comes back with a fresh breaker
      expect(interceptor.breakers.get("a.test:7200")!.metrics().totalCalls).toBe(1);
    });

    it("keeps an open breaker however long it is idle, so a failing target is not forgotten", async () => {
      const { clock, interceptor, a, b } = evicting({ idleMs: 1000 });
      for (let i = 0; i < 2; i++) await a.client.compute(fail).catch(() => {});
      clock.advance(4000);
      await b.client.compute({});
      expect(interceptor.breakers.get("a.test:7200")!.state).toBe("open");
      const error = await a.client.compute({}).catch((e: unknown) => e);
      expect(isBreakerRejection(error)).toBe(true);
      expect(a.served.compute).toBe(2);
    });

    it("keeps at most maxBreakers, evicting the least recently used closed one", async () => {
      const { interceptor, a, b, c } = evicting({ maxBreakers: 2 });
      await a.client.compute({});
      await b.client.compute({});
      await a.client.compute({});
      await c.client.compute({});
      expect(keys(interceptor)).toEqual(["a.test:7200", "c.test:7202"]); // b was least recent

      for (let i = 0; i < 2; i++) await a.client.compute(fail).catch(() => {});
      await c.client.compute({});
      await b.client.compute({}); // a is least recent but open: c goes instead
      expect(keys(interceptor)).toEqual(["a.test:7200", "b.test:7201"]);
      expect(interceptor.breakers.get("a.test:7200")!.state).toBe("open");
    });

    it("refuses settings that cannot work", () => {
      expect(() => createBreakerInterceptor({ evict: { idleMs: 0 } })).toThrow(
        "evict.idleMs must be a number of ms > 0, got 0",
      );
      expect(() => createBreakerInterceptor({ evict: { maxBreakers: 0.5 } })).toThrow(
        "evict.maxBreakers must be an integer >= 1, got 0.5",
      );
    });
  });
});
