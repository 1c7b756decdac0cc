import http2 from "node:http2";
import net from "node:net";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { WorkerService } from "@quartet/proto/quartet/worker/v1/worker_pb";
import type { ServiceProcess } from "@quartet/server/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startGateway } from "./processes.ts";
import { streamError } from "./stream-error.ts";

// Backends that misbehave on purpose: one cuts every answer after half a frame, one is not
// HTTP/2 at all.
let resetter: http2.Http2Server;
let garbage: net.Server;
let gateway: ServiceProcess;

const listen = (server: net.Server) =>
  new Promise<string>((resolve) =>
    server.listen(0, "127.0.0.1", () =>
      resolve(`http://127.0.0.1:${(server.address() as net.AddressInfo).port}`),
    ),
  );

beforeAll(async () => {
  resetter = http2.createServer();
  resetter.on("stream", (stream, headers) => {
    stream.on("error", () => {});
    if (String(headers[":path"]).startsWith("/grpc.health")) {
      stream.close(http2.constants.NGHTTP2_REFUSED_STREAM);
      return;
    }
    stream.respond({ ":status": 200, "content-type": String(headers["content-type"]) });
    // Half a message frame, then the stream is reset.
    stream.write(Buffer.from([0, 0, 0, 0, 10, 1, 2]), () =>
      stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR),
    );
  });
  garbage = net.createServer((socket) => socket.end("this is not HTTP/2\r\n\r\n"));
  const [r, g] = await Promise.all([listen(resetter), listen(garbage)]);
  gateway = await startGateway([
    "--route",
    `quartet.worker.v1.WorkerService=${r};quartet.broker.v1.BrokerService=${g}`,
  ]);
}, 60_000);
afterAll(async () => {
  await gateway?.kill("SIGTERM");
  resetter?.close();
  garbage?.close();
});

describe("misbehaving backends get the caller a clean error", () => {
  it("a server stream cut mid-message ends with an error (gRPC)", async () => {
    const client = createClient(WorkerService, createGrpcTransport({ baseUrl: gateway.url }));
    const err = await streamError(client.watch({ steps: 2 }));
    // The half message already relayed makes the client's own decoding fail, or it reads the
    // gateway's Unavailable trailers: an error either way, not a hung call.
    expect(err).toBeInstanceOf(ConnectError);
  });

  it("a server stream cut mid-message ends with an error (Connect)", async () => {
    const client = createClient(
      WorkerService,
      createConnectTransport({ baseUrl: gateway.url, httpVersion: "1.1" }),
    );
    const err = await streamError(client.watch({ steps: 2 }));
    expect(err).toBeInstanceOf(ConnectError);
  });

  it("a unary answer cut short is an error to the caller, not a hung call", async () => {
    const client = createClient(
      WorkerService,
      createConnectTransport({ baseUrl: gateway.url, httpVersion: "2" }),
    );
    const err = await client.compute({}).catch((e: unknown) => ConnectError.from(e));
    // Node closes this stream cleanly after the half frame: the truncated body is relayed and
    // the client's decoding refuses it.
    expect([Code.Internal, Code.Unavailable]).toContain((err as ConnectError).code);
  });

  it("a backend that does not speak HTTP/2 is Unavailable, and the gateway still serves", async () => {
    const res = await fetch(`${gateway.url}/quartet.broker.v1.BrokerService/ListQueues`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: "{}",
    });
    expect(res.status).toBe(503);
    expect(((await res.json()) as { message: string }).message).toContain(
      "quartet.broker.v1.BrokerService",
    );
    const health = await fetch(`${gateway.url}/metrics`);
    expect(health.status).toBe(200);
  });
});
