import type { Delivery, ReceiveResponse } from "@quartet/proto/quartet/broker/v1/broker_pb";
import type { ServiceProcess } from "@quartet/server/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { client, dataDir, startBroker, str, text } from "./brokers.ts";

let broker: ServiceProcess;
beforeAll(async () => {
  broker = await startBroker(["--data-dir", dataDir()]);
});
afterAll(async () => {
  await broker?.kill("SIGTERM");
});

/** The deliveries of the next response on a Receive stream. */
async function nextDeliveries(stream: AsyncIterator<ReceiveResponse>): Promise<Delivery[]> {
  const next = await stream.next();
  if (next.done) throw new Error("the receive stream ended");
  return next.value.deliveries;
}

describe("work queue flow control across processes", () => {
  it("a consumer holds at most max_in_flight deliveries; each ack or nack returns one credit", async () => {
    const c = client(broker.url);
    await c.admin.createQueue({ queue: "credit", settings: { durable: true, maxDeliveries: 3 } });
    await c.enqueue(
      "credit",
      [1, 2, 3, 4, 5].map((n) => ({ payload: text(`job-${n}`) })),
    );
    const abort = new AbortController();
    const stream = c.broker
      .receive({ queue: "credit", maxInFlight: 2 }, { signal: abort.signal })
      [Symbol.asyncIterator]();
    expect((await stream.next()).value?.ready).toBe(true);
    const first = await nextDeliveries(stream);
    expect(first.map((d) => str(d.message!.payload))).toEqual(["job-1", "job-2"]);
    expect((await c.broker.stats({ queue: "credit" })).stats).toMatchObject({
      depth: 3n,
      inFlight: 2n,
      consumers: 1,
    });

    await c.broker.ack({ queue: "credit", deliveryIds: [first[0]!.deliveryId] });
    const second = await nextDeliveries(stream);
    expect(second.map((d) => [str(d.message!.payload), d.attempt])).toEqual([["job-3", 1]]);

    await c.broker.nack({ queue: "credit", deliveryIds: [first[1]!.deliveryId] });
    const third = await nextDeliveries(stream);
    expect(third.map((d) => [str(d.message!.payload), d.attempt])).toEqual([["job-2", 2]]);

    // Ending the stream gives its deliveries back at once: another consumer gets them.
    abort.abort();
    const done = new AbortController();
    const other = client(broker.url)
      .broker.receive({ queue: "credit", maxInFlight: 10 }, { signal: done.signal })
      [Symbol.asyncIterator]();
    expect((await other.next()).value?.ready).toBe(true);
    const seen: [string, number][] = [];
    while (seen.length < 4) {
      for (const d of await nextDeliveries(other)) seen.push([str(d.message!.payload), d.attempt]);
    }
    expect(seen.sort()).toEqual([
      ["job-2", 3],
      ["job-3", 2],
      ["job-4", 1],
      ["job-5", 1],
    ]);
    done.abort();
  });
});
