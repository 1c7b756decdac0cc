import { fromBinary } from "@bufbuild/protobuf";
import { ComputeResponseSchema } from "@quartet/proto/quartet/worker/v1/worker_pb";
import type { ServiceProcess } from "@quartet/server/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { RESULT_SUBJECT_HEADER } from "../src/consumer.ts";
import { brokerClient, job, startBroker, startQueueWorker } from "./brokered.ts";

let broker: ServiceProcess;
const started: ServiceProcess[] = [];
beforeAll(async () => {
  broker = await startBroker();
});
afterAll(async () => {
  await Promise.all(started.map((p) => p.kill("SIGKILL")));
  await broker?.kill("SIGTERM");
});

describe("the worker's consumer role against a real broker", () => {
  it("jobs held unacked by a worker killed with SIGKILL are redelivered to another worker", async () => {
    const c = brokerClient(broker.url);
    await c.admin.createQueue({
      queue: "kill-test",
      settings: { durable: true, maxDeliveries: 5 },
    });
    const results = await c.subscribe("results.kill-test");
    const hung = await startQueueWorker("hung", broker.url, "kill-test", [
      "--consumer-fault",
      "stall",
      "--consumer-max-in-flight",
      "5",
    ]);
    started.push(hung);
    const seqs = await c.enqueue(
      "kill-test",
      Array.from({ length: 5 }, (_, i) => ({
        payload: job(`job-${i}`),
        headers: { [RESULT_SUBJECT_HEADER]: "results.kill-test" },
      })),
    );
    for (const seq of seqs)
      await hung.waitForLog((l) => l.msg === "job received, stalling" && l.seq === Number(seq));
    expect((await c.broker.stats({ queue: "kill-test" })).stats).toMatchObject({
      depth: 0n,
      inFlight: 5n,
    });

    const healthy = await startQueueWorker("healthy", broker.url, "kill-test");
    started.push(healthy);
    await hung.kill("SIGKILL");
    const got: { seq: string; worker: string; attempt: string; digest: string }[] = [];
    for await (const m of results.messages) {
      got.push({
        seq: m.headers["quartet-job"]!,
        worker: m.headers["quartet-worker"]!,
        attempt: m.headers["quartet-attempt"]!,
        digest: fromBinary(ComputeResponseSchema, m.payload).digest,
      });
      if (got.length === seqs.length) break;
    }
    expect(got.map((g) => g.seq).sort()).toEqual(seqs.map(String).sort());
    for (const g of got) expect(g).toMatchObject({ worker: "healthy", attempt: "2" });
    await healthy.kill("SIGTERM");
    const stats = (await c.broker.stats({ queue: "kill-test" })).stats!;
    expect(stats).toMatchObject({ depth: 0n, inFlight: 0n, ackedTotal: 5n, redeliveredTotal: 5n });
    results.close();
  }, 60_000);

  it("a job that fails every time lands in the dead-letter queue after max deliveries", async () => {
    const c = brokerClient(broker.url);
    await c.admin.createQueue({
      queue: "poison-test",
      settings: { durable: true, maxDeliveries: 3 },
    });
    const worker = await startQueueWorker("poisoned", broker.url, "poison-test");
    started.push(worker);
    const [seq] = await c.enqueue("poison-test", [
      { payload: job("bad", { fault: { failCode: 13, failMessage: "always broken" } }) },
    ]);
    const dead = await broker.waitForLog(
      (l) => l.msg === "message dead-lettered" && l.queue === "poison-test",
    );
    expect(dead).toMatchObject({ seq: Number(seq), deliveries: 3 });
    for (const attempt of [1, 2, 3]) {
      await worker.waitForLog(
        (l) => l.msg === "job failed" && l.seq === Number(seq) && l.attempt === attempt,
      );
    }
    expect((await c.broker.stats({ queue: "poison-test" })).stats).toMatchObject({
      depth: 0n,
      inFlight: 0n,
      deadLetters: 1n,
      deadLetteredTotal: 1n,
      ackedTotal: 0n,
    });
    // A good job after it is processed: the dead letter no longer blocks or returns.
    const [good] = await c.enqueue("poison-test", [{ payload: job("good") }]);
    await worker.waitForLog((l) => l.msg === "job done" && l.seq === Number(good));
    expect(worker.lines.filter((l) => l.includes('"job failed"'))).toHaveLength(3);
    // Redriving puts it back for another round of attempts.
    expect((await c.admin.redriveDeadLetters({ queue: "poison-test" })).redriven).toBe(1n);
    let deadLettered = 0;
    await broker.waitForLog(
      (l) => l.msg === "message dead-lettered" && l.seq === Number(seq) && ++deadLettered === 2,
    );
    expect((await c.broker.stats({ queue: "poison-test" })).stats).toMatchObject({
      deadLetters: 1n,
      deadLetteredTotal: 2n,
    });
    await worker.kill("SIGTERM");
  }, 60_000);
});
