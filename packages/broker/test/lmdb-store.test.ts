import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { type Delivery, defaultQueueSettings, LmdbQueueStore, Queues } from "../src/index.ts";

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});
const item = (n: number) => ({ payload: new Uint8Array([n]), headers: { n: String(n) } });

describe("durable queues in LMDB", () => {
  it("recovers unacked and dead-lettered messages and exact counters after reopening", async () => {
    const dir = mkdtempSync(join(tmpdir(), "broker-lmdb-"));
    dirs.push(dir);
    const store = await LmdbQueueStore.open(dir);
    expect(store.epoch).toBe(0);
    const queues = new Queues({ store });
    await queues.create("jobs", { ...defaultQueueSettings, durable: true, maxDeliveries: 2 });
    await queues.enqueue("jobs", [1, 2, 3, 4].map(item));
    const got: Delivery[] = [];
    const detach = queues.attach(
      "jobs",
      { maxInFlight: 3, deliver: (ds) => got.push(...ds) },
      () => {},
    );
    await queues.ack("jobs", [got[0]!.deliveryId]);
    await queues.nack("jobs", [got[1]!.deliveryId], 0);
    // Message 2 is in flight for the second time: detaching reaches max deliveries.
    expect(got.map((d) => [d.seq, d.attempt])).toEqual([
      [1, 1],
      [2, 1],
      [3, 1],
      [4, 1],
      [2, 2],
    ]);
    const oldId = got[2]!.deliveryId;
    detach();
    queues.close();
    await store.close();

    const reopened = await LmdbQueueStore.open(dir);
    expect(reopened.epoch).toBe(1);
    const again = new Queues({ store: reopened });
    expect(again.names()).toEqual(["jobs"]);
    expect(again.stats("jobs")).toMatchObject({
      depth: 2,
      inFlight: 0,
      deadLetters: 1,
      enqueuedTotal: 4,
      ackedTotal: 1,
      deadLetteredTotal: 1,
    });
    const after: Delivery[] = [];
    again.attach("jobs", { maxInFlight: 10, deliver: (ds) => after.push(...ds) }, () => {});
    expect(after.map((d) => [d.seq, d.item.headers.n])).toEqual([
      [3, "3"],
      [4, "4"],
    ]);
    await expect(again.ack("jobs", [oldId])).rejects.toMatchObject({ code: "failed_precondition" });
    expect(after.every((d) => d.deliveryId !== oldId)).toBe(true);
    await again.enqueue("jobs", [item(5)]);
    expect(after.at(-1)!.seq).toBe(5);
    again.close();
    await reopened.close();
  });

  it("refuses durable queues without a store", async () => {
    const queues = new Queues();
    await expect(
      queues.create("d", { ...defaultQueueSettings, durable: true }),
    ).rejects.toMatchObject({
      code: "failed_precondition",
    });
    expect(await queues.create("m", defaultQueueSettings)).toBe(true);
    expect(await queues.create("m", defaultQueueSettings)).toBe(false);
    await expect(
      queues.create("m", { ...defaultQueueSettings, maxDeliveries: 9 }),
    ).rejects.toMatchObject({
      code: "already_exists",
    });
  });
});
