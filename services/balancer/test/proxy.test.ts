import http from "node:http";
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, type Transport } from "@connectrpc/connect";
import {
  createConnectTransport,
  createGrpcTransport,
  createGrpcWebTransport,
} from "@connectrpc/connect-node";
import { ComputeRequestSchema, WorkerService } from "@quartet/proto/quartet/worker/v1/worker_pb";
import type { ServiceProcess } from "@quartet/server/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startGateway, startWorker } from "./processes.ts";

const service = "quartet.worker.v1.WorkerService";
let workers: ServiceProcess[] = [];
let gateway: ServiceProcess;

beforeAll(async () => {
  workers = await Promise.all([startWorker("w1"), startWorker("w2")]);
  gateway = await startGateway(["--route", `${service}=${workers.map((w) => w.url).join(",")}`]);
}, 60_000);
afterAll(async () => {
  await gateway?.kill("SIGTERM");
  await Promise.all(workers.map((w) => w.kill("SIGTERM")));
});

type Make = (baseUrl: string) => Transport;
const protocols: [string, Make][] = [
  ["Connect over HTTP/1.1", (baseUrl) => createConnectTransport({ baseUrl, httpVersion: "1.1" })],
  // Compute has no side effects, so its unary calls go as Connect GETs.
  [
    "Connect GET over HTTP/1.1",
    (baseUrl) => createConnectTransport({ baseUrl, httpVersion: "1.1", useHttpGet: true }),
  ],
  ["Connect over h2c", (baseUrl) => createConnectTransport({ baseUrl, httpVersion: "2" })],
  ["gRPC over h2c", (baseUrl) => createGrpcTransport({ baseUrl })],
  ["gRPC-Web over HTTP/1.1", (baseUrl) => createGrpcWebTransport({ baseUrl, httpVersion: "1.1" })],
  ["gRPC-Web over h2c", (baseUrl) => createGrpcWebTransport({ baseUrl, httpVersion: "2" })],
];

describe.each(protocols)("%s through the gateway", (_name, make) => {
  it("a unary call answers as the worker does directly", async () => {
    const direct = createClient(WorkerService, make(workers[0]!.url));
    const via = createClient(WorkerService, make(gateway.url));
    const request = create(ComputeRequestSchema, { iterations: 3, input: "same" });
    const [a, b] = await Promise.all([direct.compute(request), via.compute(request)]);
    expect(b.digest).toBe(a.digest);
    expect(["w1", "w2"]).toContain(b.workerId);
  });

  it("a server stream delivers every message", async () => {
    const via = createClient(WorkerService, make(gateway.url));
    const steps: string[] = [];
    for await (const m of via.watch({ steps: 3, iterationsPerStep: 1 }))
      steps.push(`${m.step}/${m.totalSteps}`);
    expect(steps).toEqual(["1/3", "2/3", "3/3"]);
  });

  it("a backend error keeps its code and message", async () => {
    const via = createClient(WorkerService, make(gateway.url));
    const err = await via
      .compute({ fault: { failCode: 9, failMessage: "no such thing" } })
      .catch((e: unknown) => ConnectError.from(e));
    expect(err).toBeInstanceOf(ConnectError);
    expect((err as ConnectError).code).toBe(Code.FailedPrecondition);
    expect((err as ConnectError).rawMessage).toBe("no such thing");
  });
});

describe("routing", () => {
  it("spreads calls over the route's endpoints (round robin)", async () => {
    const via = createClient(
      WorkerService,
      createConnectTransport({ baseUrl: gateway.url, httpVersion: "2" }),
    );
    const seen = new Set<string>();
    for (let i = 0; i < 6; i++) seen.add((await via.compute({ input: String(i) })).workerId);
    expect(seen).toEqual(new Set(["w1", "w2"]));
  });

  it("an HTTP/1.1 unary answer goes out whole with its Content-Length, not chunked", async () => {
    const post = (body: string) =>
      new Promise<{ headers: http.IncomingHttpHeaders; body: string }>((resolve, reject) => {
        const req = http.request(`${gateway.url}/${service}/Compute`, {
          method: "POST",
          headers: { "content-type": "application/json", "connect-protocol-version": "1" },
        });
        req.on("response", (res) => {
          let text = "";
          res.setEncoding("utf8").on("data", (c: string) => (text += c));
          res.on("end", () => resolve({ headers: res.headers, body: text }));
        });
        req.on("error", reject);
        req.end(body);
      });
    for (const answer of [
      await post('{"input":"x"}'),
      await post('{"fault":{"failCode":9,"failMessage":"no such thing"}}'),
    ]) {
      expect(answer.headers["transfer-encoding"]).toBeUndefined();
      expect(Number(answer.headers["content-length"])).toBe(Buffer.byteLength(answer.body));
    }
  });

  it("an unknown service is Unimplemented and the message names the known routes", async () => {
    const res = await fetch(`${gateway.url}/no.such.v1.Service/Method`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: "{}",
    });
    expect(res.status).toBe(501);
    const body = (await res.json()) as { code: string; message: string };
    expect(body.code).toBe("unimplemented");
    expect(body.message).toContain(service);
  });

  it("keeps serve()'s health and metrics endpoints", async () => {
    const res = await fetch(`${gateway.url}/metrics`);
    expect(res.status).toBe(200);
  });
});
