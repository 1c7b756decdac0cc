import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import {
  Health,
  HealthCheckResponse_ServingStatus as Status,
} from "@quartet/proto/health/v1/health_pb";
import { WorkerService } from "@quartet/proto/quartet/worker/v1/worker_pb";
import { expect, it } from "vitest";
import { startWorker } from "./workers.ts";

it("on SIGTERM reports NOT_SERVING, lets the in-flight call finish and exits 0", async () => {
  const worker = await startWorker("w-shutdown");
  try {
    const transport = createGrpcTransport({ baseUrl: worker.url });
    const health = createClient(Health, transport)
      .watch({ service: "quartet.worker.v1.WorkerService" })
      [Symbol.asyncIterator]();
    const statuses: Status[] = [];
    const next = async () => {
      const { value, done } = await health.next();
      if (!done) statuses.push(value.status);
      return done;
    };
    await next();
    expect(statuses).toEqual([Status.SERVING]);

    // A streaming call that is certainly in flight: its first step has arrived.
    const progress = createClient(WorkerService, transport)
      .watch({ steps: 4, iterationsPerStep: 1, stepDelayMs: 150 })
      [Symbol.asyncIterator]();
    const steps: number[] = [];
    const first = await progress.next();
    steps.push(first.value.step);

    worker.child.kill("SIGTERM");
    while (!(await next()));
    expect(statuses).toEqual([Status.SERVING, Status.NOT_SERVING]);

    for (let r = await progress.next(); !r.done; r = await progress.next())
      steps.push(r.value.step);
    expect(steps).toEqual([1, 2, 3, 4]);

    const exit = await worker.exited;
    expect(exit).toEqual({ code: 0, signal: null });
  } finally {
    await worker.kill();
  }
});
