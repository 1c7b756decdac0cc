import { Code, ConnectError, createClient } from "@connectrpc/connect";
import {
  createConnectTransport,
  createGrpcTransport,
  createGrpcWebTransport,
} from "@connectrpc/connect-node";
import { WorkerService } from "@quartet/proto/quartet/worker/v1/worker_pb";
import { afterEach, expect, it } from "vitest";
import { startServer, stopServers } from "./processes.ts";

afterEach(stopServers);

const errorOf = async (p: Promise<unknown>) =>
  ConnectError.from(
    await p.then(
      () => new Error("expected the call to fail"),
      (e: unknown) => e,
    ),
  );

it("ends the calls that outlive the drain deadline with Unavailable, in every protocol", async () => {
  const server = await startServer(["--drain-timeout-ms", "200"]);
  const transports = {
    grpc: createGrpcTransport({ baseUrl: server.url }),
    "grpc-web": createGrpcWebTransport({ baseUrl: server.url, httpVersion: "2" }),
    "connect-h2": createConnectTransport({ baseUrl: server.url, httpVersion: "2" }),
    "connect-h1": createConnectTransport({ baseUrl: server.url, httpVersion: "1.1" }),
  };
  const calls: Promise<ConnectError>[] = [];
  for (const [name, transport] of Object.entries(transports)) {
    const client = createClient(WorkerService, transport);
    // A unary call that has reached its handler and sent nothing yet...
    calls.push(errorOf(client.compute({ input: name, fault: { delayMs: 600_000 } })));
    await server.waitForLog((line) => line.msg === "compute started" && line.input === name);
    // ...and a stream that has sent its first message.
    const stream = client.watch({ steps: 2, stepDelayMs: 600_000 })[Symbol.asyncIterator]();
    expect((await stream.next()).value?.step).toBe(1);
    calls.push(errorOf(stream.next()));
  }

  server.child.kill("SIGTERM");
  for (const error of await Promise.all(calls)) {
    expect(error.code).toBe(Code.Unavailable);
    expect(error.rawMessage).toMatch(/shutting down .* drain deadline of 200 ms/);
  }
  expect(await server.exited).toEqual({ code: 0, signal: null });
});
