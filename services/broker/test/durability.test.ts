import type { ServiceProcess } from "@quartet/server/testing";
import { afterAll, describe, expect, it } from "vitest";
import { client, dataDir, startBroker, str, text } from "./brokers.ts";

const started: ServiceProcess[] = [];
afterAll(async () => {
  await Promise.all(started.map((p) => p.kill("SIGKILL")));
});

describe("durable work queue survives SIGKILL of the broker", () => {
  it("under load: every acknowledged enqueue is delivered, confirmed acks stay acked, counts reconcile exactly", async () => {
    const dir = dataDir();
    const first = await startBroker(["--data-dir", dir]);
    started.push(first);
    const c1 = client(first.url);
    await c1.admin.createQueue({
      queue: "orders",
      settings: { durable: true, maxDeliveries: 1000, ackDeadlineMs: 600_000 },
    });

    const acknowledged = new Set<string>(); // enqueues the broker confirmed
    const uncertain = new Set<string>(); // enqueues cut off by the crash
    const delivered1 = new Set<string>();
    const ackSent = new Set<string>();
    const ackConfirmed = new Set<string>();
    let loaded!: () => void;
    const underLoad = new Promise<void>((resolve) => (loaded = resolve));
    const check = () => {
      if (acknowledged.size >= 3000 && ackConfirmed.size >= 1000) loaded();
    };

    let nextId = 0;
    let crashed = false;
    const producer = async (p: number) => {
      while (!crashed) {
        const ids = Array.from({ length: 20 }, () => `p${p}-${nextId++}`);
        try {
          await c1.broker.enqueue({
            queue: "orders",
            messages: ids.map((id) => ({ payload: text(id) })),
          });
          for (const id of ids) acknowledged.add(id);
          check();
        } catch {
          for (const id of ids) uncertain.add(id);
          return;
        }
      }
    };
    const abort = new AbortController();
    const consumer = async () => {
      try {
        for await (const res of c1.broker.receive(
          { queue: "orders", maxInFlight: 100 },
          { signal: abort.signal },
        )) {
          if (res.deliveries.length === 0) continue;
          const ids = res.deliveries.map((d) => str(d.message!.payload));
          for (const id of ids) {
            delivered1.add(id);
            ackSent.add(id);
          }
          await c1.broker.ack({
            queue: "orders",
            deliveryIds: res.deliveries.map((d) => d.deliveryId),
          });
          for (const id of ids) ackConfirmed.add(id);
          check();
        }
      } catch {
        // The broker died.
      }
    };
    const loops = [producer(1), producer(2), producer(3), producer(4), consumer()];
    await underLoad;
    await first.kill("SIGKILL");
    crashed = true;
    await Promise.all(loops);
    abort.abort();

    const second = await startBroker(["--data-dir", dir]);
    started.push(second);
    const c2 = client(second.url);
    const s0 = (await c2.broker.stats({ queue: "orders" })).stats!;
    const enqueued = Number(s0.enqueuedTotal);
    const acked = Number(s0.ackedTotal);
    const depth = Number(s0.depth);
    expect(Number(s0.inFlight)).toBe(0);
    expect(Number(s0.deadLetters)).toBe(0);
    expect(enqueued).toBe(acked + depth);
    expect(enqueued).toBeGreaterThanOrEqual(acknowledged.size);
    expect(enqueued).toBeLessThanOrEqual(acknowledged.size + uncertain.size);
    expect(acked).toBeGreaterThanOrEqual(ackConfirmed.size);
    expect(acked).toBeLessThanOrEqual(ackSent.size);

    // Drain what is left.
    const delivered2 = new Set<string>();
    const drain = new AbortController();
    if (depth > 0) {
      for await (const res of c2.broker.receive(
        { queue: "orders", maxInFlight: 1000 },
        { signal: drain.signal },
      )) {
        if (res.deliveries.length === 0) continue;
        for (const d of res.deliveries) {
          const id = str(d.message!.payload);
          expect(delivered2.has(id), `${id} delivered twice after the restart`).toBe(false);
          delivered2.add(id);
        }
        await c2.broker.ack({
          queue: "orders",
          deliveryIds: res.deliveries.map((d) => d.deliveryId),
        });
        if (delivered2.size === depth) break;
      }
    }
    drain.abort();

    const everything = new Set([...delivered1, ...delivered2]);
    for (const id of acknowledged)
      expect(everything.has(id), `acknowledged ${id} was lost`).toBe(true);
    for (const id of ackConfirmed) expect(delivered2.has(id), `acked ${id} came back`).toBe(false);
    for (const id of delivered2) expect(acknowledged.has(id) || uncertain.has(id)).toBe(true);
    // Consumers only ever see stored messages, so what was delivered is exactly what was stored,
    // and what did not come back is exactly what the broker counts as acked.
    expect(everything.size).toBe(enqueued);
    expect(everything.size - delivered2.size).toBe(acked);
    const final = (await c2.broker.stats({ queue: "orders" })).stats!;
    expect(final).toMatchObject({
      depth: 0n,
      inFlight: 0n,
      enqueuedTotal: BigInt(enqueued),
      ackedTotal: BigInt(enqueued),
    });
    await second.kill("SIGTERM");
  }, 90_000);
});
