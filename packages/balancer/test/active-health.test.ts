import { createConnectTransport } from "@connectrpc/connect-node";
import { FakeClock } from "@quartet/determinism/testing";
import { HealthCheckResponse_ServingStatus } from "@quartet/proto/health/v1/health_pb";
import { afterEach, describe, expect, it } from "vitest";
import { ActiveHealthCheck } from "../src/health/active.ts";
import { refusedUrl, startTestServer, type TestServer } from "./servers.ts";

/** Collects reports and lets the test await the next one. */
function reports() {
  const seen: { serving: boolean; reason: string }[] = [];
  let waiter: (() => void) | undefined;
  return {
    seen,
    report: (serving: boolean, reason: string) => {
      seen.push({ serving, reason });
      waiter?.();
    },
    /** Resolves once at least `n` reports have arrived. */
    count: (n: number) =>
      new Promise<void>((resolve) => {
        if (seen.length >= n) return resolve();
        waiter = () => {
          if (seen.length >= n) resolve();
        };
      }),
  };
}

const cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn();
});

async function check(server: TestServer | string, options = {}) {
  const url = typeof server === "string" ? server : server.url;
  const clock = new FakeClock();
  const r = reports();
  const hc = new ActiveHealthCheck(
    createConnectTransport({ baseUrl: url, httpVersion: "2" }),
    { intervalMs: 1_000, retryBaseMs: 100, ...options },
    clock,
    r.report,
  );
  hc.start();
  cleanup.push(() => hc.stop());
  return { hc, clock, r };
}

describe("active health checks", () => {
  it("follows Watch: every status the server streams is reported", async () => {
    const server = await startTestServer("w1");
    cleanup.push(() => server.close());
    const { hc, r } = await check(server);
    await r.count(1);
    expect(hc.mode).toBe("watch");
    expect(r.seen[0]).toEqual({ serving: true, reason: "watch: SERVING" });
    server.setStatus(HealthCheckResponse_ServingStatus.NOT_SERVING);
    await r.count(2);
    expect(r.seen[1]).toEqual({ serving: false, reason: "watch: NOT_SERVING" });
    server.setStatus(HealthCheckResponse_ServingStatus.SERVING);
    await r.count(3);
    expect(r.seen[2]!.serving).toBe(true);
  });

  it("falls back to Check on an interval when Watch is Unimplemented", async () => {
    const server = await startTestServer("w1", { health: "check" });
    cleanup.push(() => server.close());
    const { hc, clock, r } = await check(server);
    await r.count(1);
    expect(hc.mode).toBe("check");
    expect(r.seen[0]).toEqual({ serving: true, reason: "check: SERVING" });
    server.setStatus(HealthCheckResponse_ServingStatus.NOT_SERVING);
    // The next Check happens only when the interval elapses on the injected clock.
    expect(clock.pendingTimers).toBe(1);
    clock.advance(1_000);
    await r.count(2);
    expect(r.seen[1]).toEqual({ serving: false, reason: "check: NOT_SERVING" });
  });

  it("treats a server without grpc.health.v1 as healthy and stops checking", async () => {
    const server = await startTestServer("w1", { health: "none" });
    cleanup.push(() => server.close());
    const { hc, clock, r } = await check(server);
    await r.count(1);
    expect(r.seen[0]!.serving).toBe(true);
    expect(hc.mode).toBe("unsupported");
    expect(clock.pendingTimers).toBe(0);
  });

  it("reports an unreachable endpoint unhealthy and retries Watch with a growing backoff", async () => {
    const { hc, clock, r } = await check(await refusedUrl(), { retryBaseMs: 100, retryMaxMs: 400 });
    await r.count(1);
    expect(hc.mode).toBe("watch");
    expect(r.seen[0]!.serving).toBe(false);
    expect(r.seen[0]!.reason).toMatch(/ECONNREFUSED/);
    clock.advance(99);
    expect(r.seen.length).toBe(1);
    clock.advance(1);
    await r.count(2);
    clock.advance(199); // second wait is 200 ms
    expect(r.seen.length).toBe(2);
    clock.advance(1);
    await r.count(3);
  });

  it("marks the endpoint unhealthy when the server dies under an open Watch", async () => {
    const server = await startTestServer("w1");
    const { r } = await check(server);
    await r.count(1);
    await server.crash();
    await r.count(2);
    expect(r.seen[1]!.serving).toBe(false);
  });
});
