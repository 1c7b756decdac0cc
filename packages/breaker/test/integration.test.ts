// The interceptor against real worker processes over HTTP/1.1 on loopback: a worker that fails
// (killed, or told to fail) trips the breaker; while open, calls fail fast and the worker sees
// none of them; after the reset timeout (fake clock) a probe goes through and, once the worker
// is healthy again, closes the breaker.
import { fileURLToPath } from "node:url";
import { Code, type ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { FakeClock } from "@quartet/breaker/testing";
import { WorkerService } from "@quartet/proto/quartet/worker/v1/worker_pb";
import { type ServiceProcess, startServiceProcess } from "@quartet/server/testing";
import { afterEach, describe, expect, it } from "vitest";
import { consecutiveFailures, createBreakerInterceptor, isBreakerRejection } from "../src/index.ts";

const entry = fileURLToPath(new URL("../../../services/worker/src/main.ts", import.meta.url));
const UNAVAILABLE = 14; // quartet.worker.v1.Code.CODE_UNAVAILABLE
const T0 = Date.UTC(2025, 0, 1);

const running = new Set<ServiceProcess>();
async function startWorker(id: string, port = 0): Promise<ServiceProcess> {
  const worker = await startServiceProcess(entry, ["--port", String(port), "--id", id]);
  running.add(worker);
  return worker;
}
async function kill(worker: ServiceProcess): Promise<void> {
  await worker.kill("SIGKILL");
  running.delete(worker);
}
afterEach(async () => {
  await Promise.all([...running].map((w) => w.kill("SIGKILL")));
  running.clear();
});

/**
 * Waits until the worker's metrics show `expected` served Compute calls: the server records a
 * call when its response ends, which can be just after the client has read it.
 */
async function expectServed(worker: ServiceProcess, expected: number): Promise<void> {
  let served = -1;
  for (let attempt = 0; attempt < 50 && served !== expected; attempt++)
    served = await servedComputeCalls(worker);
  expect(served).toBe(expected);
}

/** Compute calls the worker has served, from its Prometheus endpoint (any status code). */
async function servedComputeCalls(worker: ServiceProcess): Promise<number> {
  const text = await (await fetch(`${worker.url}/metrics`)).text();
  let total = 0;
  for (const line of text.split("\n")) {
    if (line.startsWith("rpc_server_duration_count{") && line.includes('rpc_method="Compute"'))
      total += Number(line.slice(line.lastIndexOf(" ") + 1));
  }
  return total;
}

function guardedClient(baseUrl: string, clock: FakeClock) {
  const interceptor = createBreakerInterceptor({
    key: "host",
    clock,
    breaker: {
      trip: consecutiveFailures(3),
      resetTimeoutMs: 10_000,
      backoff: { multiplier: 2, maxMs: 60_000 },
    },
  });
  const transport = createConnectTransport({
    baseUrl,
    httpVersion: "1.1",
    interceptors: [interceptor],
  });
  const client = createClient(WorkerService, transport);
  const target = new URL(baseUrl).host;
  const breaker = () => {
    const b = interceptor.breakers.get(target);
    if (b === undefined) throw new Error(`no breaker for ${target}`);
    return b;
  };
  return { client, breaker, target };
}

// Worker start-up dominates; on a loaded 2-core machine it can take seconds.
describe("breaker against real workers", { timeout: 60_000 }, () => {
  it("trips when the worker is killed, fails fast while open, and closes after a probe to the restarted worker", async () => {
    const clock = new FakeClock(T0);
    const w1 = await startWorker("w1");
    const { client, breaker, target } = guardedClient(w1.url, clock);
    await expect(client.compute({ iterations: 1, input: "a" })).resolves.toMatchObject({
      workerId: "w1",
    });
    const transitions: string[] = [];
    breaker().on("stateChange", (e) => transitions.push(`${e.from}->${e.to}`));

    await kill(w1);
    for (let i = 0; i < 3; i++) {
      const error = await client.compute({ iterations: 1 }).catch((e: unknown) => e);
      // Real network failures, not rejections by the breaker.
      expect(error).toMatchObject({ code: Code.Unavailable });
      expect(isBreakerRejection(error)).toBe(false);
    }
    expect(breaker().state).toBe("open");

    // The worker is back on the same port, but the breaker is still open: nothing reaches it.
    const w1b = await startWorker("w1-restarted", w1.port);
    clock.advance(4_000);
    for (let i = 0; i < 5; i++) {
      const error = await client.compute({ iterations: 1 }).catch((e: unknown) => e);
      expect(isBreakerRejection(error)).toBe(true);
      expect((error as ConnectError).code).toBe(Code.Unavailable);
      expect((error as ConnectError).rawMessage).toBe(
        `circuit breaker "${target}" is open; next probe at 2025-01-01T00:00:10.000Z (in 6000 ms)`,
      );
    }
    expect(await servedComputeCalls(w1b)).toBe(0);

    clock.advance(6_000);
    await expect(client.compute({ iterations: 1, input: "b" })).resolves.toMatchObject({
      workerId: "w1-restarted",
    });
    expect(breaker().state).toBe("closed");
    expect(transitions).toEqual(["closed->open", "open->half-open", "half-open->closed"]);
    expect(breaker().metrics()).toMatchObject({
      successes: 2,
      failures: 3,
      rejections: 5,
      inFlight: 0,
    });
  });

  it("trips on injected faults, reopens with backoff while the worker still fails, then closes", async () => {
    const clock = new FakeClock(T0);
    const w2 = await startWorker("w2");
    const { client, breaker } = guardedClient(w2.url, clock);
    const failing = { iterations: 1, fault: { failCode: UNAVAILABLE } };
    for (let i = 0; i < 3; i++)
      await expect(client.compute(failing)).rejects.toMatchObject({ code: Code.Unavailable });
    expect(breaker().state).toBe("open");
    expect(breaker().metrics().nextProbeAt).toBe(T0 + 10_000);
    await expectServed(w2, 3);

    for (let i = 0; i < 10; i++) await client.compute({ iterations: 1 }).catch(() => {});
    expect(await servedComputeCalls(w2)).toBe(3);
    expect(breaker().metrics().rejections).toBe(10);

    // The probe still fails: open again, for twice as long.
    clock.advance(10_000);
    await expect(client.compute(failing)).rejects.toMatchObject({ code: Code.Unavailable });
    expect(breaker().state).toBe("open");
    expect(breaker().metrics().nextProbeAt).toBe(clock.now() + 20_000);

    // The worker answers again: the next probe closes the breaker, and calls flow.
    clock.advance(20_000);
    await expect(client.compute({ iterations: 2, input: "x" })).resolves.toMatchObject({
      workerId: "w2",
      iterations: 2,
    });
    expect(breaker().state).toBe("closed");
    await expect(client.compute({ iterations: 1 })).resolves.toMatchObject({ workerId: "w2" });
    expect(breaker().health()).toMatchObject({ healthy: true, state: "closed" });
  });
});
