// Many calls in flight racing transitions: the half-open probe limit holds, and every result is
// recorded exactly once. Rule under test: a result is always counted in the metrics, but it
// moves the state only if the breaker is still in the generation the call started in.
import { Code, ConnectError } from "@connectrpc/connect";
import { FakeClock } from "@quartet/determinism/testing";
import { describe, expect, it } from "vitest";
import {
  BreakerRejectedError,
  CircuitBreaker,
  consecutiveFailures,
  seededRandom,
} from "../src/index.ts";
import { type Deferred, deferred, failWith, run } from "./helpers.ts";

const unavailable = () => new ConnectError("down", Code.Unavailable);

describe("half-open probe limit under a burst", () => {
  it("runs exactly K of 100 simultaneous calls and rejects the rest at once", async () => {
    const clock = new FakeClock();
    const breaker = new CircuitBreaker({
      clock,
      trip: consecutiveFailures(1),
      resetTimeoutMs: 1000,
      halfOpen: { maxProbes: 3, successesToClose: 3 },
    });
    await run(breaker, 1, failWith());
    clock.advance(1000);
    const gates: Deferred<string>[] = [];
    const calls = Array.from({ length: 100 }, () =>
      breaker
        .execute(() => {
          const gate = deferred<string>();
          gates.push(gate);
          return gate.promise;
        })
        .then(
          () => "ok",
          (e: unknown) => (e instanceof BreakerRejectedError ? "rejected" : "failed"),
        ),
    );
    expect(gates).toHaveLength(3);
    expect(breaker.metrics()).toMatchObject({ rejections: 97, inFlight: 3 });
    for (const gate of gates) gate.resolve("ok");
    const outcomes = await Promise.all(calls);
    expect(outcomes.filter((o) => o === "ok")).toHaveLength(3);
    expect(outcomes.filter((o) => o === "rejected")).toHaveLength(97);
    expect(breaker.state).toBe("closed");
  });
});

describe("results of calls started in an older generation", () => {
  it("are counted but cannot move a breaker that has opened since", async () => {
    const clock = new FakeClock();
    const breaker = new CircuitBreaker({
      clock,
      trip: consecutiveFailures(3),
      resetTimeoutMs: 1000,
      halfOpen: { maxProbes: 1, successesToClose: 1 },
    });
    const slow = Array.from({ length: 10 }, () => deferred<string>());
    const slowCalls = slow.map((d) => breaker.execute(() => d.promise).catch(() => "failed"));
    await run(breaker, 3, failWith()); // trips while the 10 are in flight
    expect(breaker.state).toBe("open");

    for (const d of slow.slice(0, 5)) d.resolve("late");
    await Promise.all(slowCalls.slice(0, 5));
    expect(breaker.state).toBe("open"); // late successes did not close it
    expect(breaker.metrics().successes).toBe(5);

    clock.advance(1000);
    expect(breaker.state).toBe("half-open");
    for (const d of slow.slice(5)) d.reject(unavailable());
    await Promise.all(slowCalls.slice(5));
    expect(breaker.state).toBe("half-open"); // late failures did not reopen it
    // ...and did not hand out extra probe permits: still exactly one.
    const probe = deferred<string>();
    const first = breaker.execute(() => probe.promise);
    await expect(breaker.execute(() => Promise.resolve("x"))).rejects.toBeInstanceOf(
      BreakerRejectedError,
    );
    probe.resolve("ok");
    await first;
    expect(breaker.state).toBe("closed");
    expect(breaker.metrics()).toMatchObject({
      totalCalls: 15,
      successes: 6,
      failures: 8,
      rejections: 1,
      inFlight: 0,
    });
  });
});

describe("seeded random interleavings", () => {
  // BREAKER_SEED=n replays one seed; BREAKER_SEEDS=n runs seeds 1..n.
  const seeds = process.env.BREAKER_SEED
    ? [Number(process.env.BREAKER_SEED)]
    : Array.from({ length: Number(process.env.BREAKER_SEEDS ?? 200) }, (_, i) => i + 1);
  const STEPS = 400;

  // How often the simulations reached the interesting situations, so the test proves something.
  const reached = { probeLimitFull: 0, halfOpenRejections: 0, staleResults: 0, reopened: 0 };

  it(`never exceed the probe limit and never lose a result (${seeds.length} seeds)`, async () => {
    for (const seed of seeds) {
      try {
        await simulate(seed);
      } catch (error) {
        throw new Error(
          `seed ${seed} failed (reproduce: BREAKER_SEED=${seed} npx vitest run test/concurrency.test.ts): ${error}`,
          {
            cause: error,
          },
        );
      }
    }
    if (seeds.length > 1) {
      expect(reached.probeLimitFull).toBeGreaterThan(100);
      expect(reached.halfOpenRejections).toBeGreaterThan(100);
      expect(reached.staleResults).toBeGreaterThan(100);
      expect(reached.reopened).toBeGreaterThan(100);
    }
  });

  async function simulate(seed: number) {
    const random = seededRandom(seed);
    const clock = new FakeClock(0);
    const maxProbes = 1 + Math.floor(random() * 4);
    const breaker = new CircuitBreaker({
      clock,
      random,
      trip: consecutiveFailures(1 + Math.floor(random() * 4)),
      resetTimeoutMs: 100,
      backoff: { maxMs: 1000, jitter: 0.5 },
      halfOpen: { maxProbes, successesToClose: 1 + Math.floor(random() * 3) },
    });
    let generation = 0;
    breaker.on("stateChange", (e) => {
      generation++;
      if (e.from === "half-open" && e.to === "open") reached.reopened++;
    });
    breaker.on("rejected", (e) => {
      if (e.state === "half-open") reached.halfOpenRejections++;
    });
    breaker.on("success", (e) => {
      if (e.stale) reached.staleResults++;
    });
    breaker.on("failure", (e) => {
      if (e.stale) reached.staleResults++;
    });

    type InFlight = { gate: Deferred<string>; generation: number; probe: boolean };
    const inFlight: InFlight[] = [];
    const tally = { started: 0, ok: 0, failed: 0, ignored: 0, rejected: 0 };
    const settled: Promise<void>[] = [];

    const checkProbeLimit = () => {
      if (breaker.state !== "half-open") return;
      const probes = inFlight.filter((c) => c.probe && c.generation === generation).length;
      expect(probes).toBeLessThanOrEqual(maxProbes);
      if (probes === maxProbes) reached.probeLimitFull++;
    };

    for (let step = 0; step < STEPS; step++) {
      const r = random();
      if (r < 0.45) {
        const state = breaker.state;
        const probe = state === "half-open";
        const probes = inFlight.filter((c) => c.probe && c.generation === generation).length;
        // Liveness: a closed breaker, or a half-open one with a free permit, must run the call.
        const mustRun = state === "closed" || (probe && probes < maxProbes);
        let ran = false;
        tally.started++;
        settled.push(
          breaker
            .execute(() => {
              ran = true;
              const gate = deferred<string>();
              inFlight.push({ gate, generation, probe });
              return gate.promise;
            })
            .then(
              () => void tally.ok++,
              (e: unknown) => {
                if (e instanceof BreakerRejectedError) tally.rejected++;
                else if ((e as ConnectError).code === Code.Canceled) tally.ignored++;
                else tally.failed++;
              },
            ),
        );
        expect(ran).toBe(mustRun || state === "disabled");
      } else if (r < 0.85 && inFlight.length > 0) {
        const [call] = inFlight.splice(Math.floor(random() * inFlight.length), 1);
        const o = random();
        if (o < 0.5) call!.gate.resolve("ok");
        else if (o < 0.9) call!.gate.reject(unavailable());
        else call!.gate.reject(new ConnectError("cancelled", Code.Canceled));
        await call!.gate.promise.catch(() => {});
        await Promise.resolve(); // let the breaker's handler run
      } else {
        clock.advance(Math.floor(random() * 150));
      }
      checkProbeLimit();
    }
    for (const call of inFlight.splice(0)) call.gate.resolve("ok");
    await Promise.all(settled);

    const m = breaker.metrics();
    expect(m.inFlight).toBe(0);
    expect(m.totalCalls).toBe(tally.started);
    expect(m.successes).toBe(tally.ok);
    expect(m.failures).toBe(tally.failed);
    expect(m.ignored).toBe(tally.ignored);
    expect(m.rejections).toBe(tally.rejected);
    expect(m.successes + m.failures + m.ignored + m.rejections).toBe(tally.started);
    expect(m.stateChanges).toBe(generation);
  }
});
