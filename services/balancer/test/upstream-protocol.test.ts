import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import http from "node:http";
import http2 from "node:http2";
import type net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { create, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import {
  createConnectTransport,
  createGrpcTransport,
  createGrpcWebTransport,
} from "@connectrpc/connect-node";
import { ComputeResponseSchema, WorkerService } from "@quartet/proto/quartet/worker/v1/worker_pb";
import type { ServiceProcess } from "@quartet/server/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startGateway } from "./processes.ts";
import { streamError } from "./stream-error.ts";

// A unary Connect or gRPC-Web call goes on to its backend over HTTP/1.1, whatever the caller
// speaks; a stream or a gRPC call over HTTP/2. A backend that speaks HTTP/2 only is found out
// on the first HTTP/1.1 call, which it then gets over HTTP/2. Two backends that speak one
// protocol each tell which was used.
let onlyH1: http.Server;
let onlyH2: http2.Http2Server;
let gateway: ServiceProcess;
let dir: string;
/** Requests each backend saw. */
const seen = { h1: 0, h2: 0 };
/** Resolves when the HTTP/1.1 backend sees a request it holds unanswered go away. */
let hungClosed: Promise<void>;
let onHungClosed: () => void;

const answer = (digest: string) => JSON.stringify({ digest, workerId: digest });

/** The same answer in protobuf's binary form. */
const binaryAnswer = (digest: string) =>
  toBinary(ComputeResponseSchema, create(ComputeResponseSchema, { digest, workerId: digest }));

/** The same answer as gRPC-Web: one message frame, then the trailers frame. */
const grpcWebAnswer = (digest: string) => {
  const frame = (flags: number, bytes: Uint8Array) => {
    const out = Buffer.alloc(5 + bytes.length);
    out[0] = flags;
    out.writeUInt32BE(bytes.length, 1);
    out.set(bytes, 5);
    return out;
  };
  return Buffer.concat([
    frame(0, binaryAnswer(digest)),
    frame(0x80, Buffer.from("grpc-status: 0\r\n")),
  ]);
};

const listen = (server: net.Server) =>
  new Promise<string>((resolve) =>
    server.listen(0, "127.0.0.1", () =>
      resolve(`http://127.0.0.1:${(server.address() as net.AddressInfo).port}`),
    ),
  );

beforeAll(async () => {
  hungClosed = new Promise((resolve) => {
    onHungClosed = resolve;
  });
  onlyH1 = http.createServer((req, res) => {
    if (req.method !== "POST") return void res.writeHead(400).end();
    seen.h1++;
    let body = "";
    req.setEncoding("utf8").on("data", (c: string) => (body += c));
    req.on("end", () => {
      // A request that asks to hang is never answered; the gateway gives up on it.
      const type = String(req.headers["content-type"]);
      if (body.includes("hang")) res.on("close", () => onHungClosed());
      else if (type.startsWith("application/grpc-web"))
        res.writeHead(200, { "content-type": type }).end(grpcWebAnswer("h1"));
      else if (type === "application/proto")
        res.writeHead(200, { "content-type": type }).end(binaryAnswer("h1"));
      else res.writeHead(200, { "content-type": "application/json" }).end(answer("h1"));
    });
  });
  onlyH2 = http2.createServer((req, res) => {
    seen.h2++;
    req.resume();
    req.on("end", () =>
      res.writeHead(200, { "content-type": "application/json" }).end(answer("h2")),
    );
  });
  const [h1, h2] = await Promise.all([listen(onlyH1), listen(onlyH2)]);
  dir = mkdtempSync(join(tmpdir(), "quartet-upstream-"));
  const routes = join(dir, "routes.json");
  // No health checks: neither backend serves grpc.health.
  writeFileSync(
    routes,
    JSON.stringify([
      { service: "quartet.worker.v1.WorkerService", endpoints: [h1], healthCheck: false },
      { service: "quartet.broker.v1.BrokerService", endpoints: [h2], healthCheck: false },
    ]),
  );
  gateway = await startGateway(["--routes-file", routes]);
}, 60_000);
afterAll(async () => {
  await gateway?.kill("SIGTERM");
  onlyH1?.close();
  onlyH2?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** A Connect unary call with fetch, which speaks HTTP/1.1. */
const postH1 = (path: string, body = "{}", headers: Record<string, string> = {}) =>
  fetch(`${gateway.url}${path}`, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body,
  });

describe("the protocol a call takes to its backend", () => {
  it("an HTTP/1.1 call goes on over HTTP/1.1", async () => {
    const before = seen.h1;
    for (let i = 0; i < 3; i++) {
      const res = await postH1("/quartet.worker.v1.WorkerService/Compute");
      expect(res.status).toBe(200);
      expect(await res.json()).toEqual({ digest: "h1", workerId: "h1" });
    }
    expect(seen.h1 - before).toBe(3);
  });

  it("an h2c caller's unary call goes on over HTTP/1.1 too", async () => {
    const before = seen.h1;
    for (const make of [createConnectTransport, createGrpcWebTransport]) {
      const client = createClient(WorkerService, make({ baseUrl: gateway.url, httpVersion: "2" }));
      expect((await client.compute({})).workerId).toBe("h1");
    }
    expect(seen.h1 - before).toBe(2);
  });

  it("a gRPC call goes on over HTTP/2, which an HTTP/1.1-only backend does not speak", async () => {
    const before = seen.h1;
    const client = createClient(WorkerService, createGrpcTransport({ baseUrl: gateway.url }));
    const err = await client.compute({}).catch((e: unknown) => ConnectError.from(e));
    expect((err as ConnectError).code).toBe(Code.Unavailable);
    expect(seen.h1).toBe(before);
  });

  it("an HTTP/1.1 call to an HTTP/2-only backend is served over HTTP/2, the first one too", async () => {
    for (let i = 0; i < 3; i++) {
      const res = await postH1("/quartet.broker.v1.BrokerService/ListQueues");
      expect(res.status).toBe(200);
      expect(await res.json()).toEqual({ digest: "h2", workerId: "h2" });
    }
    // Each call reached the backend once: the first HTTP/1.1 attempt was never read.
    expect(seen.h2).toBe(3);
  });

  it("a server stream of an HTTP/1.1 caller goes on over HTTP/2", async () => {
    const before = seen.h1;
    const client = createClient(
      WorkerService,
      createConnectTransport({ baseUrl: gateway.url, httpVersion: "1.1" }),
    );
    const err = await streamError(client.watch({ steps: 1 }));
    // The HTTP/1.1-only backend cannot take it over HTTP/2.
    expect(err?.code).toBe(Code.Unavailable);
    expect(seen.h1).toBe(before);
  });

  it("the caller's deadline ends an HTTP/1.1 call, and the backend's request with it", async () => {
    const res = await postH1("/quartet.worker.v1.WorkerService/Compute", '{"input":"hang"}', {
      "connect-timeout-ms": "300",
    });
    expect(res.status).toBe(504);
    expect(((await res.json()) as { code: string }).code).toBe("deadline_exceeded");
    await hungClosed;
  });
});
