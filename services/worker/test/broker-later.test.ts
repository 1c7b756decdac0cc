import { freePort } from "@quartet/server/testing";
import { expect, it } from "vitest";
import { startBroker } from "./brokered.ts";
import { startWorker } from "./workers.ts";

const WARN = 40;
const roleArgs = (port: number) => [
  ...["--broker-url", `http://127.0.0.1:${port}`],
  ...["--queue", "jobs", "--request-subject", "compute.sha"],
];
/** Debug level, so the quiet retries can be seen. */
const debug = { env: { QUARTET_LOG_LEVEL: "debug" } };
const retryOf = (role: string, failures: number) => (l: Record<string, unknown>) =>
  typeof l.msg === "string" && l.msg.startsWith(role) && l.failures === failures;

it("a worker started before its broker retries quietly, stays up, and attaches once the broker is there", async () => {
  const port = await freePort();
  const worker = await startWorker("w-early", roleArgs(port), debug);
  try {
    // Retries are logged at debug level only: `npm start` shows no warnings while the
    // workers wait for the broker.
    const consumerRetry = await worker.waitForLog(retryOf("consumer", 2));
    const responderRetry = await worker.waitForLog(retryOf("responder", 2));
    expect(consumerRetry.level).toBeLessThan(WARN);
    expect(responderRetry.level).toBeLessThan(WARN);
    expect(worker.child.exitCode).toBeNull();
    const broker = await startBroker({}, port, ["--queues", "jobs"]);
    try {
      await worker.waitForLog((l) => l.msg === "consumer attached");
      await worker.waitForLog((l) => l.msg === "responder subscribed");
      expect(worker.child.exitCode).toBeNull();
    } finally {
      await broker.kill();
    }
    const loud = worker.lines.map((l) => JSON.parse(l)).filter((l) => l.level >= WARN);
    expect(loud).toEqual([]);
  } finally {
    await worker.kill();
  }
}, 60_000);

it("warns once per role when the broker is still missing after --broker-warn-after-ms", async () => {
  const port = await freePort();
  const worker = await startWorker(
    "w-waiting",
    [...roleArgs(port), "--broker-warn-after-ms", "0"],
    debug,
  );
  try {
    const warned = await worker.waitForLog((l) => l.level === WARN && l.failures === 1);
    expect(warned.msg).toMatch(/^(consumer|responder) still has no broker after \d+ ms; retrying/);
    // Two more retries of each role later, still one warning each.
    await worker.waitForLog(retryOf("consumer", 3));
    await worker.waitForLog(retryOf("responder", 3));
    const warnings = worker.lines.map((l) => JSON.parse(l)).filter((l) => l.level >= WARN);
    expect(warnings.map((l) => l.msg.split(" ")[0]).sort()).toEqual(["consumer", "responder"]);
  } finally {
    await worker.kill();
  }
}, 60_000);
