import { Code, ConnectError } from "@connectrpc/connect";
import type { WatchQueuesResponse } from "@quartet/proto/quartet/broker/v1/broker_pb";
import type { ServiceProcess } from "@quartet/server/testing";
import { afterAll, beforeAll, expect, it } from "vitest";
import { client, dataDir, startBroker, text } from "./brokers.ts";

let broker: ServiceProcess;
beforeAll(async () => {
  broker = await startBroker(["--data-dir", dataDir()]);
});
afterAll(async () => {
  await broker?.kill("SIGTERM");
});

it("WatchQueues streams each queue's counters and the subscriptions as they change", async () => {
  const c = client(broker.url);
  const tooOften = await (async () => {
    for await (const _ of c.broker.watchQueues({ intervalMs: 10 })) return undefined;
  })().catch((e: unknown) => ConnectError.from(e));
  expect(tooOften?.code).toBe(Code.InvalidArgument);
  expect(tooOften?.rawMessage).toContain("interval_ms");

  await c.admin.createQueue({ queue: "watched", settings: { durable: true } });
  const controller = new AbortController();
  const samples: WatchQueuesResponse[] = [];
  let notify: (() => void) | undefined;
  const reading = (async () => {
    for await (const m of c.broker.watchQueues(
      { intervalMs: 100 },
      { signal: controller.signal },
    )) {
      samples.push(m);
      notify?.();
    }
  })().catch(() => {});
  /** The first sample at or after index `from` that matches. */
  const until = async (match: (m: WatchQueuesResponse) => boolean, from = 0) => {
    for (;;) {
      const found = samples.slice(from).find(match);
      if (found) return found;
      await new Promise<void>((resolve) => {
        notify = resolve;
      });
    }
  };
  const watched = (m: WatchQueuesResponse) => m.queues.find((q) => q.queue === "watched");
  try {
    await until((m) => watched(m)?.depth === 0n);
    await c.enqueue(
      "watched",
      [1, 2, 3].map((n) => ({ payload: text(`job-${n}`) })),
    );
    const filled = await until((m) => watched(m)?.depth === 3n);
    expect(watched(filled)?.enqueuedTotal).toBe(3n);
    expect(filled.observedAtUnixMs).toBeGreaterThan(0n);

    const subscribed = new AbortController();
    const subscription = (async () => {
      for await (const _ of c.broker.subscribe(
        { subject: "watched.>" },
        { signal: subscribed.signal },
      ));
    })().catch(() => {});
    await until((m) => m.subscriptions === 1);
    subscribed.abort();
    await subscription;
    // The subscription is gone from the samples after it ended.
    await until((m) => m.subscriptions === 0, samples.length);
  } finally {
    controller.abort();
    await reading;
  }
});
