import { Code } from "@connectrpc/connect";
import type { ServiceProcess } from "@quartet/server/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BrokerClient } from "../src/client.ts";
import { client, dataDir, refused, startBroker, take, text } from "./brokers.ts";

let broker: ServiceProcess;
beforeAll(async () => {
  broker = await startBroker([
    "--data-dir",
    dataDir(),
    "--max-message-bytes",
    "1024",
    "--max-subscriptions-per-client",
    "2",
    "--max-buffer-size",
    "100",
  ]);
});
afterAll(async () => {
  await broker?.kill("SIGTERM");
});

describe("bad input gets the right code and message, and changes nothing", () => {
  it("empty and invalid subjects are InvalidArgument naming the token", async () => {
    const c = client(broker.url);
    const cases: [string, RegExp][] = [
      ["", /message.subject: subject is empty/],
      ["orders..eu", /token 2 of subject "orders..eu" is empty/],
      [
        "orders.*",
        /token 2 of subject "orders.\*" is the wildcard "\*"; publish subjects must be literal/,
      ],
      ["orders.e u", /token 2 .*printable ASCII/],
    ];
    for (const [subject, message] of cases) {
      const err = await refused(() => c.broker.publish({ subject, payload: text("x") }));
      expect(err.code, subject).toBe(Code.InvalidArgument);
      expect(err.rawMessage).toMatch(message);
    }
    const filter = await refused(() => c.subscribe("orders.>.eu"));
    expect(filter.code).toBe(Code.InvalidArgument);
    expect(filter.rawMessage).toMatch(
      /token 2 of subject filter "orders.>.eu" is ">", which is only allowed as the last token/,
    );
    const req = await refused(() => c.broker.request({ subject: "a.", payload: text("x") }));
    expect(req.code).toBe(Code.InvalidArgument);
    expect(req.rawMessage).toMatch(/request.subject: token 2 .* is empty/);
    // A batch with one bad message publishes none of it.
    const watcher = await c.subscribe("batch.>");
    const batch = await refused(() =>
      c.broker.publishBatch({
        messages: [
          { subject: "batch.ok", payload: text("1") },
          { subject: "batch..bad", payload: text("2") },
        ],
      }),
    );
    expect(batch.code).toBe(Code.InvalidArgument);
    expect(batch.rawMessage).toMatch(/messages\[1\].subject/);
    await c.publish("batch.last", text("3"));
    const [first] = await take(watcher.messages, 1);
    expect(first!.subject).toBe("batch.last");
    watcher.close();
  });

  it("oversized messages, too many subscriptions and too large buffers are ResourceExhausted", async () => {
    const c = client(broker.url, "greedy");
    const big = await refused(() =>
      c.broker.publish({ subject: "a.b", payload: new Uint8Array(1025) }),
    );
    expect(big.code).toBe(Code.ResourceExhausted);
    expect(big.rawMessage).toMatch(/message is 1025 bytes .* above the broker's limit of 1024/);
    const buffer = await refused(() => c.subscribe("a.b", { bufferSize: 101 }));
    expect(buffer.code).toBe(Code.ResourceExhausted);
    expect(buffer.rawMessage).toMatch(/buffer_size: 101 is above the broker's limit of 100/);
    const subs = [await c.subscribe("a.1"), await c.subscribe("a.2")];
    const third = await refused(() => c.subscribe("a.3"));
    expect(third.code).toBe(Code.ResourceExhausted);
    expect(third.rawMessage).toMatch(/client "greedy" already has 2 subscriptions/);
    for (const s of subs) s.close();
  });

  it("a slow subscriber with OVERFLOW_DISCONNECT is cut off with a clear error", async () => {
    const c = client(broker.url, "slow");
    const slow = await c.subscribe("firehose", {
      bufferSize: 1,
      overflow: "disconnect",
      maxBatch: 1,
    });
    // Never read: the broker's buffer of 1 overflows once the stream's own buffers fill up.
    const payload = new Uint8Array(1000);
    const err = await (async () => {
      for (let round = 0; round < 1000; round++) {
        const delivered = await c.publishBatch(
          Array.from({ length: 100 }, () => ({ subject: "firehose", payload })),
        );
        if (delivered < 100) break;
      }
      return refused(async () => {
        for await (const _ of slow.messages) {
          // drain what was sent before the disconnect
        }
      });
    })();
    expect(err.code).toBe(Code.ResourceExhausted);
    expect(err.rawMessage).toMatch(
      /slow consumer: the buffer of 1 messages for "firehose" is full/,
    );
  }, 30_000);

  it("acks and nacks of unknown or already-acked deliveries fail and change nothing", async () => {
    const c = client(broker.url);
    await c.admin.createQueue({ queue: "strict", settings: { durable: true } });
    await c.enqueue("strict", [{ payload: text("a") }, { payload: text("b") }]);
    const abort = new AbortController();
    const stream = c.broker
      .receive({ queue: "strict", maxInFlight: 10 }, { signal: abort.signal })
      [Symbol.asyncIterator]();
    expect((await stream.next()).value?.ready).toBe(true);
    const deliveries = (await stream.next()).value!.deliveries;
    expect(deliveries).toHaveLength(2);
    const [a, b] = deliveries;
    await c.broker.ack({ queue: "strict", deliveryIds: [a!.deliveryId] });
    const before = (await c.broker.stats({ queue: "strict" })).stats;

    const again = await refused(() =>
      c.broker.ack({ queue: "strict", deliveryIds: [b!.deliveryId, a!.deliveryId] }),
    );
    // Settled delivery ids are forgotten: acking one again is NotFound (see authorization.test.ts).
    expect(again.code).toBe(Code.NotFound);
    expect(again.rawMessage).toMatch(/delivery \d+ is not in flight to you on queue strict/);
    const unknown = await refused(() =>
      c.broker.nack({ queue: "strict", deliveryIds: [b!.deliveryId, 123456789n] }),
    );
    expect(unknown.code).toBe(Code.NotFound);
    expect(unknown.rawMessage).toMatch(/delivery 123456789 is not in flight to you/);
    const empty = await refused(() => c.broker.ack({ queue: "strict", deliveryIds: [] }));
    expect(empty.code).toBe(Code.InvalidArgument);
    const noQueue = await refused(() => c.broker.ack({ queue: "nope", deliveryIds: [1n] }));
    expect(noQueue.code).toBe(Code.NotFound);
    expect(noQueue.rawMessage).toMatch(/queue nope does not exist/);
    const badName = await refused(() =>
      c.broker.enqueue({ queue: "bad name", messages: [{ payload: text("x") }] }),
    );
    expect(badName.code).toBe(Code.InvalidArgument);
    const tooBig = await refused(() =>
      c.broker.enqueue({ queue: "strict", messages: [{ payload: new Uint8Array(2000) }] }),
    );
    expect(tooBig.code).toBe(Code.ResourceExhausted);

    expect((await c.broker.stats({ queue: "strict" })).stats).toEqual(before);
    await c.broker.ack({ queue: "strict", deliveryIds: [b!.deliveryId] });
    expect((await c.broker.stats({ queue: "strict" })).stats).toMatchObject({
      depth: 0n,
      inFlight: 0n,
      ackedTotal: 2n,
    });
    abort.abort();
  });

  it("admin methods need the cluster credential", async () => {
    const anonymous = new BrokerClient({ baseUrl: broker.url });
    const err = await refused(() => anonymous.admin.createQueue({ queue: "x" }));
    expect(err.code).toBe(Code.Unauthenticated);
    expect(err.rawMessage).toMatch(/needs the cluster credential/);
    const list = await anonymous.broker.listQueues({});
    expect(list.queues.map((q) => q.queue)).not.toContain("x");
  });
});
