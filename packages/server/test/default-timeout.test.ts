import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { WorkerService } from "@quartet/proto/quartet/worker/v1/worker_pb";
import { afterEach, describe, expect, it } from "vitest";
import { startServer, stopServers } from "./processes.ts";

afterEach(stopServers);

describe("a unary call that comes without a timeout", () => {
  it("ends at the server's --max-timeout-ms with DeadlineExceeded, over Connect and gRPC", async () => {
    const server = await startServer(["--max-timeout-ms", "300"]);
    for (const transport of [
      createConnectTransport({ baseUrl: server.url, httpVersion: "1.1" }),
      createGrpcTransport({ baseUrl: server.url }),
    ]) {
      const client = createClient(WorkerService, transport);
      // The handler waits 60 s on its call's signal: only the applied deadline can end it.
      const error = await client.compute({ input: "x", fault: { delayMs: 60_000 } }).then(
        () => undefined,
        (e: unknown) => ConnectError.from(e),
      );
      expect(error?.code, error?.message).toBe(Code.DeadlineExceeded);
    }
  }, 30_000);

  it("keeps the timeout a caller asked for, and leaves streaming calls open", async () => {
    const server = await startServer(["--max-timeout-ms", "300"]);
    const client = createClient(WorkerService, createGrpcTransport({ baseUrl: server.url }));
    const shorter = await client
      .compute({ input: "x", fault: { delayMs: 60_000 } }, { timeoutMs: 100 })
      .then(
        () => undefined,
        (e: unknown) => ConnectError.from(e),
      );
    expect(shorter?.code).toBe(Code.DeadlineExceeded);
    // A server stream without a timeout runs past the unary maximum (600 ms of steps).
    const steps: number[] = [];
    for await (const r of client.watch({ steps: 4, stepDelayMs: 200 })) steps.push(r.step);
    expect(steps).toEqual([1, 2, 3, 4]);
  }, 30_000);
});
