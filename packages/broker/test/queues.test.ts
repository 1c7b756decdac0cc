import { FakeClock } from "@quartet/determinism/testing";
import { describe, expect, it } from "vitest";
import { type Delivery, defaultQueueSettings, Queues } from "../src/index.ts";

const item = (n: number) => ({ payload: new Uint8Array([n]), headers: {} });

describe("Queues drives deadlines and delays with its timers", () => {
  it("redelivers after the ack deadline and releases nacked messages after their delay", async () => {
    const clock = new FakeClock();
    const queues = new Queues({ clock });
    await queues.create("q", { ...defaultQueueSettings, ackDeadlineMs: 1_000, maxDeliveries: 5 });
    const got: Delivery[] = [];
    queues.attach("q", { maxInFlight: 1, deliver: (ds) => got.push(...ds) }, () => {});
    await queues.enqueue("q", [item(1)]);
    expect(got.map((d) => d.attempt)).toEqual([1]);
    clock.advance(999);
    expect(got).toHaveLength(1);
    clock.advance(1);
    expect(got.map((d) => d.attempt)).toEqual([1, 2]);
    await queues.nack("q", [got[1]!.deliveryId], 500);
    clock.advance(499);
    expect(got).toHaveLength(2);
    clock.advance(1);
    expect(got.map((d) => d.attempt)).toEqual([1, 2, 3]);
    await queues.ack("q", [got[2]!.deliveryId]);
    expect(clock.pendingTimers).toBe(0);
    expect(queues.stats("q")).toMatchObject({
      depth: 0,
      inFlight: 0,
      ackedTotal: 1,
      redeliveredTotal: 2,
    });
  });

  it("counts purged messages so the totals still reconcile", async () => {
    const queues = new Queues({ clock: new FakeClock() });
    await queues.create("q", defaultQueueSettings);
    await queues.enqueue("q", [1, 2, 3].map(item));
    const got: Delivery[] = [];
    queues.attach("q", { maxInFlight: 1, deliver: (ds) => got.push(...ds) }, () => {});
    expect(await queues.purge("q")).toBe(2);
    const s = queues.stats("q");
    expect(s).toMatchObject({ depth: 0, inFlight: 1, purgedTotal: 2, enqueuedTotal: 3 });
    expect(s.enqueuedTotal).toBe(
      s.ackedTotal + s.purgedTotal + s.depth + s.inFlight + s.deadLetters,
    );
  });
});
