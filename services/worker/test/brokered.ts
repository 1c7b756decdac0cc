import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { create, toBinary } from "@bufbuild/protobuf";
import { BrokerClient } from "@quartet/broker-service/client";
import { ComputeRequestSchema } from "@quartet/proto/quartet/worker/v1/worker_pb";
import {
  type ServiceProcess,
  type StartOptions,
  startServiceProcess,
} from "@quartet/server/testing";
import { afterAll } from "vitest";
import { startWorker } from "./workers.ts";

const brokerEntry = fileURLToPath(new URL("../../broker/src/main.ts", import.meta.url));
export const TOKEN = "test-cluster-token-0123456789";

const dirs: string[] = [];
// Registered for each test file that imports this module (vitest isolates files).
afterAll(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

/** Starts a real broker process with a fresh durable store (removed after the test file). */
export function startBroker(
  options: StartOptions = {},
  port = 0,
  args: string[] = [],
): Promise<ServiceProcess> {
  const dir = mkdtempSync(join(tmpdir(), "quartet-broker-"));
  dirs.push(dir);
  return startServiceProcess(brokerEntry, ["--port", String(port), "--data-dir", dir, ...args], {
    ...options,
    env: { QUARTET_CLUSTER_TOKEN: TOKEN, ...options.env },
  });
}

/** Starts a worker consuming `queue` and waits until it is attached. */
export async function startQueueWorker(
  id: string,
  brokerUrl: string,
  queue: string,
  args: string[] = [],
  options: StartOptions = {},
): Promise<ServiceProcess> {
  const worker = await startWorker(
    id,
    ["--broker-url", brokerUrl, "--queue", queue, ...args],
    options,
  );
  await worker.waitForLog((l) => l.msg === "consumer attached");
  return worker;
}

export const brokerClient = (url: string) => new BrokerClient({ baseUrl: url, token: TOKEN });

export const job = (
  input: string,
  init: Parameters<typeof create<typeof ComputeRequestSchema>>[1] = {},
) => toBinary(ComputeRequestSchema, create(ComputeRequestSchema, { input, ...init }));
