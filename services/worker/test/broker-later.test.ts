import { once } from "node:events";
import { createServer } from "node:net";
import { expect, it } from "vitest";
import { startBroker } from "./brokered.ts";
import { startWorker } from "./workers.ts";

/** A loopback port that was free a moment ago. */
async function freePort(): Promise<number> {
  const probe = createServer().listen(0, "127.0.0.1");
  await once(probe, "listening");
  const { port } = probe.address() as { port: number };
  probe.close();
  await once(probe, "close");
  return port;
}

it("a worker started before its broker keeps retrying, stays up, and attaches once the broker is there", async () => {
  const port = await freePort();
  const worker = await startWorker("w-early", [
    "--broker-url",
    `http://127.0.0.1:${port}`,
    "--queue",
    "jobs",
    "--request-subject",
    "compute.sha",
  ]);
  try {
    await worker.waitForLog(
      (l) => l.msg === "consumer lost the broker; retrying" && l.failures === 2,
    );
    await worker.waitForLog(
      (l) => l.msg === "responder lost the broker; retrying" && l.failures === 2,
    );
    expect(worker.child.exitCode).toBeNull();
    const broker = await startBroker({}, port, ["--queues", "jobs"]);
    try {
      await worker.waitForLog((l) => l.msg === "consumer attached");
      await worker.waitForLog((l) => l.msg === "responder subscribed");
      expect(worker.child.exitCode).toBeNull();
    } finally {
      await broker.kill();
    }
  } finally {
    await worker.kill();
  }
}, 60_000);
