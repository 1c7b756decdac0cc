import { describe, expect, it } from "vitest";
import { type BrokerError, type Delivery, defaultQueueSettings, WorkQueue } from "../src/index.ts";

const item = (n: number) => ({ payload: new Uint8Array([n]), headers: {} });

function setup(settings: Partial<typeof defaultQueueSettings> = {}) {
  let now = 1_000;
  const q = new WorkQueue(
    "jobs",
    { ...defaultQueueSettings, ackDeadlineMs: 1_000, maxDeliveries: 3, ...settings },
    { now: () => now },
  );
  const consumer = (maxInFlight: number) => {
    const got: Delivery[] = [];
    const id = q.attach({ maxInFlight, deliver: (ds) => got.push(...ds) });
    return { id, got };
  };
  return {
    q,
    consumer,
    advance: (ms: number) => {
      now += ms;
      q.tick();
    },
  };
}

const refused = (fn: () => unknown): BrokerError => {
  try {
    fn();
  } catch (e) {
    return e as BrokerError;
  }
  throw new Error("not refused");
};

describe("WorkQueue", () => {
  it("hands messages to consumers with credit, round robin, and acks remove them", () => {
    const { q, consumer } = setup();
    const a = consumer(2);
    const b = consumer(2);
    q.enqueue([1, 2, 3, 4, 5].map(item));
    expect(a.got.map((d) => d.seq)).toEqual([1, 3]);
    expect(b.got.map((d) => d.seq)).toEqual([2, 4]);
    expect(q.stats()).toMatchObject({ depth: 1, inFlight: 4, enqueuedTotal: 5 });
    q.ack([a.got[0]!.deliveryId]);
    expect(a.got.map((d) => d.seq)).toEqual([1, 3, 5]);
    expect(q.stats()).toMatchObject({ depth: 0, inFlight: 4, ackedTotal: 1 });
  });

  it("redelivers after the ack deadline, and dead-letters after max deliveries", () => {
    const { q, consumer, advance } = setup();
    const a = consumer(1);
    q.enqueue([item(1)]);
    advance(999);
    expect(a.got).toHaveLength(1);
    advance(1);
    expect(a.got.map((d) => d.attempt)).toEqual([1, 2]);
    expect(q.stats().redeliveredTotal).toBe(1);
    advance(1_000);
    expect(a.got.map((d) => d.attempt)).toEqual([1, 2, 3]);
    advance(1_000);
    expect(a.got).toHaveLength(3);
    expect(q.stats()).toMatchObject({
      depth: 0,
      inFlight: 0,
      deadLetters: 1,
      deadLetteredTotal: 1,
    });
    expect(q.redrive()).toBe(1);
    expect(a.got.map((d) => d.attempt)).toEqual([1, 2, 3, 1]);
  });

  it("nack with a delay makes the message ready again only after the delay", () => {
    const { q, consumer, advance } = setup();
    const a = consumer(5);
    q.enqueue([item(1)]);
    expect(q.nack([a.got[0]!.deliveryId], 500)).toBe(0);
    expect(q.nextWakeAt()).toBe(1_500);
    advance(499);
    expect(a.got).toHaveLength(1);
    advance(1);
    expect(a.got).toHaveLength(2);
    expect(q.nack([a.got[1]!.deliveryId], 0)).toBe(0);
    expect(q.nack([a.got[2]!.deliveryId], 0)).toBe(1);
    expect(q.stats().deadLetters).toBe(1);
  });

  it("requeues a detached consumer's in-flight messages at once for the others", () => {
    const { q, consumer } = setup();
    const a = consumer(10);
    q.enqueue([1, 2, 3].map(item));
    const b = consumer(10);
    expect(b.got).toHaveLength(0);
    q.detach(a.id);
    expect(b.got.map((d) => [d.seq, d.attempt])).toEqual([
      [1, 2],
      [2, 2],
      [3, 2],
    ]);
  });

  it("refuses unknown and already-acked deliveries without changing anything", () => {
    const { q, consumer } = setup();
    const a = consumer(10);
    q.enqueue([1, 2].map(item));
    const [d1, d2] = a.got;
    q.ack([d1!.deliveryId]);
    const before = q.stats();
    const again = refused(() => q.ack([d2!.deliveryId, d1!.deliveryId]));
    expect(again.code).toBe("failed_precondition");
    expect(again.message).toMatch(/no longer in flight/);
    const unknown = refused(() => q.ack([d2!.deliveryId, 999_999]));
    expect(unknown.code).toBe("not_found");
    expect(refused(() => q.nack([0], 0)).code).toBe("not_found");
    expect(refused(() => q.ack([d2!.deliveryId, d2!.deliveryId])).code).toBe("invalid_argument");
    expect(q.stats()).toEqual(before);
    q.ack([d2!.deliveryId]);
    expect(q.stats()).toMatchObject({ inFlight: 0, ackedTotal: 2 });
  });

  it("refuses enqueues beyond max_length", () => {
    const { q } = setup({ maxLength: 2 });
    q.enqueue([item(1)]);
    expect(refused(() => q.enqueue([item(2), item(3)])).code).toBe("resource_exhausted");
    expect(q.stats().depth).toBe(1);
  });
});
