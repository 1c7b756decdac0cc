import { Code, ConnectError } from "@connectrpc/connect";
import { FakeClock } from "@quartet/determinism/testing";
import { describe, expect, it } from "vitest";
import { createRoundRobinPicker } from "../src/pickers/round-robin.ts";
import { EndpointPool, type EndpointPoolOptions } from "../src/pool.ts";

const unavailable = new ConnectError("down", Code.Unavailable);
const addresses = (n: number) =>
  Array.from({ length: n }, (_, i) => ({ id: `e${i}`, address: `http://127.0.0.1:${7000 + i}` }));

function pool(n: number, options: Partial<EndpointPoolOptions> = {}) {
  const clock = new FakeClock();
  const p = new EndpointPool({
    picker: createRoundRobinPicker({ random: () => 0 }),
    clock,
    ...options,
  });
  p.setEndpoints(addresses(n));
  return { pool: p, clock };
}

/** Runs `n` calls through the pool, failing those that land on an endpoint in `failing`. */
function calls(p: EndpointPool, n: number, failing: Set<string> = new Set()) {
  const counts: Record<string, number> = {};
  for (let i = 0; i < n; i++) {
    const lease = p.pick();
    if (!lease) throw new Error("no endpoint");
    counts[lease.endpoint.id] = (counts[lease.endpoint.id] ?? 0) + 1;
    p.release(lease, failing.has(lease.endpoint.id) ? unavailable : undefined);
  }
  return counts;
}

describe("outlier detection", () => {
  it("ejects an endpoint after consecutive failures and brings it back after the ejection time", () => {
    const { pool: p, clock } = pool(4, {
      outlierDetection: { consecutiveFailures: 3, failureRate: false, baseEjectionMs: 10_000 },
    });
    calls(p, 12, new Set(["e1"])); // e1 fails 3 times in a row
    const e1 = p.get("e1")!;
    expect(e1.healthy).toBe(false);
    expect(calls(p, 30).e1).toBeUndefined();
    clock.advance(9_999);
    expect(e1.healthy).toBe(false);
    clock.advance(1);
    expect(e1.healthy).toBe(true);
    // Back in rotation: its probe succeeds, the breaker closes, and it takes its share.
    expect(calls(p, 40).e1).toBe(10);
    expect(p.stats().find((s) => s.id === "e1")).toMatchObject({ ejected: false, ejections: 1 });
  });

  it("doubles the ejection time when the returning endpoint fails again", () => {
    const { pool: p, clock } = pool(4, {
      outlierDetection: { consecutiveFailures: 2, failureRate: false, baseEjectionMs: 1_000 },
    });
    const failing = new Set(["e2"]);
    calls(p, 8, failing);
    const e2 = p.get("e2")!;
    expect(e2.healthy).toBe(false);
    clock.advance(1_000);
    expect(e2.healthy).toBe(true);
    calls(p, 4, failing); // the probe fails: ejected again, for 2 s
    expect(e2.healthy).toBe(false);
    clock.advance(1_999);
    expect(e2.healthy).toBe(false);
    clock.advance(1);
    expect(e2.healthy).toBe(true);
    expect(p.stats().find((s) => s.id === "e2")!.ejections).toBe(2);
  });

  it("ejects on a failure rate even without a run of consecutive failures", () => {
    const { pool: p } = pool(1, {
      panicThreshold: 0,
      outlierDetection: {
        consecutiveFailures: 0,
        failureRate: { threshold: 0.5, minimumCalls: 10, windowSize: 10 },
        maxEjectedShare: 1,
      },
    });
    for (let i = 0; i < 10; i++) {
      const lease = p.pick()!;
      p.release(lease, i % 2 === 0 ? unavailable : undefined); // 50% fail, never 2 in a row
    }
    expect(p.get("e0")!.healthy).toBe(false);
  });

  it("never ejects more than the configured share of endpoints", () => {
    const { pool: p } = pool(4, {
      outlierDetection: { consecutiveFailures: 1, failureRate: false, maxEjectedShare: 0.25 },
    });
    calls(p, 4, new Set(["e0", "e1", "e2"]));
    const ejected = p.stats().filter((s) => s.ejected);
    expect(ejected.map((s) => s.id)).toEqual(["e0"]);
    // The others stay in rotation with fresh breakers.
    expect(Object.keys(calls(p, 30)).sort()).toEqual(["e1", "e2", "e3"]);
  });

  it("ends an ejection early when an active health check sees the endpoint recover", () => {
    const { pool: p } = pool(4, {
      outlierDetection: { consecutiveFailures: 2, failureRate: false, baseEjectionMs: 60_000 },
    });
    calls(p, 8, new Set(["e1"]));
    const e1 = p.get("e1")!;
    expect(e1.healthy).toBe(false);
    p.setServing(e1, false, "watch failed: ECONNREFUSED"); // the process died...
    p.setServing(e1, true, "watch: SERVING"); // ...and came back
    expect(e1.healthy).toBe(true);
    expect(calls(p, 8).e1).toBe(2);
  });

  it("does not count calls the caller cancelled against the endpoint", () => {
    const { pool: p } = pool(2, {
      outlierDetection: { consecutiveFailures: 1, failureRate: false },
    });
    const lease = p.pick()!;
    p.release(lease, new ConnectError("cancelled by caller", Code.Canceled), false);
    expect(lease.endpoint.healthy).toBe(true);
  });
});

describe("panic threshold", () => {
  it("spreads over every endpoint, healthy or not, when too few are healthy", () => {
    const { pool: p } = pool(4, { outlierDetection: false, panicThreshold: 0.5 });
    const [e0, e1, e2] = ["e0", "e1", "e2"].map((id) => p.get(id)!);
    p.setServing(e0!, false, "check: NOT_SERVING");
    expect(p.panic).toBe(false);
    expect(Object.keys(calls(p, 30)).sort()).toEqual(["e1", "e2", "e3"]);
    p.setServing(e1!, false, "check: NOT_SERVING");
    expect(p.panic).toBe(false); // 2 of 4 healthy = 50%, not below it
    p.setServing(e2!, false, "check: NOT_SERVING");
    expect(p.panic).toBe(true);
    expect(Object.keys(calls(p, 40)).sort()).toEqual(["e0", "e1", "e2", "e3"]);
    p.setServing(e2!, true, "check: SERVING");
    expect(p.panic).toBe(false);
    expect(Object.keys(calls(p, 30)).sort()).toEqual(["e2", "e3"]);
  });

  it("with threshold 0 never panics: all unhealthy means no endpoint", () => {
    const { pool: p } = pool(2, { outlierDetection: false, panicThreshold: 0 });
    for (const e of p.endpoints()) p.setServing(e, false, "down");
    expect(p.pick()).toBeUndefined();
  });
});

describe("membership", () => {
  it("keeps endpoint identity and in-flight calls across resolver updates", () => {
    const { pool: p } = pool(3, { outlierDetection: false });
    const lease = p.pick()!;
    const e0 = lease.endpoint;
    expect(e0.inFlight).toBe(1);
    p.setEndpoints(addresses(3).slice(1));
    expect(p.get("e0")).toBeUndefined();
    expect(Object.keys(calls(p, 10)).sort()).toEqual(["e1", "e2"]);
    p.release(lease); // the call on the removed endpoint still finishes normally
    expect(e0.inFlight).toBe(0);
    p.setEndpoints(addresses(3));
    expect(Object.keys(calls(p, 9)).sort()).toEqual(["e0", "e1", "e2"]);
    expect(p.get("e1")!.inFlight).toBe(0);
  });

  it("skips endpoints a call already tried", () => {
    const { pool: p } = pool(3, { outlierDetection: false });
    const tried = new Set([p.get("e0")!, p.get("e1")!]);
    for (let i = 0; i < 5; i++) {
      const lease = p.pick(undefined, tried)!;
      expect(lease.endpoint.id).toBe("e2");
      p.release(lease);
    }
    tried.add(p.get("e2")!);
    expect(p.pick(undefined, tried)).toBeUndefined();
  });

  it("reports per-endpoint stats with a latency EWMA", () => {
    const { pool: p, clock } = pool(1, { outlierDetection: false, latencyAlpha: 0.5 });
    for (const ms of [10, 20]) {
      const lease = p.pick()!;
      clock.advance(ms);
      p.release(lease, ms === 20 ? unavailable : undefined);
    }
    expect(p.stats()[0]).toMatchObject({
      id: "e0",
      total: 2,
      failures: 1,
      inFlight: 0,
      latencyEwmaMs: 15,
    });
  });
});

describe("resolver updates with a bad weight", () => {
  it("are refused whole, leaving the pool as it was", () => {
    const { pool: p } = pool(3);
    expect(() =>
      p.setEndpoints([
        { id: "e0", address: "http://127.0.0.1:7000", weight: 2 },
        { id: "e3", address: "http://127.0.0.1:7003", weight: 0 },
      ]),
    ).toThrow("endpoint e3: weight must be an integer >= 1, got 0");
    expect(["e0", "e1", "e2"].map((id) => p.get(id)?.weight)).toEqual([1, 1, 1]);
    p.setEndpoints([{ id: "e0", address: "http://127.0.0.1:7000", weight: 2 }]);
    expect(p.get("e0")!.weight).toBe(2);
  });
});
