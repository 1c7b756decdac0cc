import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { ConnectError } from "@connectrpc/connect";
import {
  type ServiceProcess,
  type StartOptions,
  startServiceProcess,
} from "@quartet/server/testing";
import { afterAll } from "vitest";
import { BrokerClient } from "../src/client.ts";

export const brokerEntry = fileURLToPath(new URL("../src/main.ts", import.meta.url));
export const workerEntry = fileURLToPath(new URL("../../worker/src/main.ts", import.meta.url));
export const TOKEN = "test-cluster-token-0123456789";

const dirs: string[] = [];
// Registered for each test file that imports this module (vitest isolates files).
afterAll(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

/** A fresh directory for a broker's durable store, removed after the test file. */
export function dataDir(): string {
  const dir = mkdtempSync(join(tmpdir(), "quartet-broker-"));
  dirs.push(dir);
  return dir;
}

/** Starts a real broker process on a free loopback port. */
export function startBroker(
  args: string[] = [],
  options: StartOptions = {},
): Promise<ServiceProcess> {
  return startServiceProcess(brokerEntry, ["--port", "0", ...args], {
    ...options,
    env: { QUARTET_CLUSTER_TOKEN: TOKEN, ...options.env },
  });
}

/** Starts a real worker process in its consumer role against `brokerUrl`. */
export async function startConsumerWorker(
  id: string,
  brokerUrl: string,
  args: string[],
  options: StartOptions = {},
): Promise<ServiceProcess> {
  return startServiceProcess(
    workerEntry,
    ["--port", "0", "--id", id, "--broker-url", brokerUrl, ...args],
    options,
  );
}

export function client(url: string, clientId?: string): BrokerClient {
  return new BrokerClient({ baseUrl: url, token: TOKEN, ...(clientId ? { clientId } : {}) });
}

export const text = (s: string) => new TextEncoder().encode(s);
export const str = (b: Uint8Array) => new TextDecoder().decode(b);

/** Collects `n` messages from an async iterable. */
export async function take<T>(iterable: AsyncIterable<T>, n: number): Promise<T[]> {
  const out: T[] = [];
  if (n === 0) return out;
  for await (const item of iterable) {
    out.push(item);
    if (out.length >= n) break;
  }
  return out;
}

/** The error a call that must be refused failed with; fails the test if it was accepted. */
export async function refused(call: () => Promise<unknown>): Promise<ConnectError> {
  try {
    await call();
  } catch (e) {
    return ConnectError.from(e);
  }
  throw new Error("the call was accepted");
}
