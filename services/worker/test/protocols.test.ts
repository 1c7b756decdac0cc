import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import {
  createConnectTransport,
  createGrpcTransport,
  createGrpcWebTransport,
} from "@connectrpc/connect-node";
import { ComputeRequestSchema, WorkerService } from "@quartet/proto/quartet/worker/v1/worker_pb";
import type { ServiceProcess } from "@quartet/server/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startWorker } from "./workers.ts";

const run = promisify(execFile);
let worker: ServiceProcess;

beforeAll(async () => {
  worker = await startWorker("w-protocols", ["--max-request-bytes", "2048"]);
});
afterAll(() => worker?.kill("SIGTERM"));

async function curl(args: string[]): Promise<{ status: number; body: string; headers: string }> {
  const { stdout } = await run("curl", ["-s", "-i", "--http1.1", ...args]);
  const split = stdout.indexOf("\r\n\r\n");
  const headers = stdout.slice(0, split);
  return { status: Number(headers.split(" ")[1]), headers, body: stdout.slice(split + 4) };
}

const sha256Of = async (input: string) =>
  (await import("node:crypto")).createHash("sha256").update(input).digest("hex");

describe("one worker port speaks every protocol", () => {
  it("runs on the pinned Node 24", () => {
    expect(process.version).toMatch(/^v24\./);
  });

  it("answers Connect JSON over HTTP/1.1 from curl", async () => {
    const res = await curl([
      `${worker.url}/quartet.worker.v1.WorkerService/Compute`,
      "-H",
      "Content-Type: application/json",
      "-d",
      '{"iterations": 0, "input": "hello"}',
    ]);
    expect(res.status).toBe(200);
    expect(JSON.parse(res.body)).toEqual({
      digest: await sha256Of("hello"),
      workerId: "w-protocols",
    });
  });

  it("answers an HTTP GET for a side-effect-free method", async () => {
    const message = encodeURIComponent(JSON.stringify({ iterations: 0, input: "get" }));
    const res = await curl([
      `${worker.url}/quartet.worker.v1.WorkerService/Compute?connect=v1&encoding=json&message=${message}`,
    ]);
    expect(res.status).toBe(200);
    expect(JSON.parse(res.body).digest).toBe(await sha256Of("get"));
  });

  const transports = {
    "Connect binary over HTTP/1.1": () =>
      createConnectTransport({ baseUrl: worker.url, httpVersion: "1.1" }),
    "Connect JSON over h2c": () =>
      createConnectTransport({ baseUrl: worker.url, httpVersion: "2", useBinaryFormat: false }),
    "gRPC binary over h2c": () => createGrpcTransport({ baseUrl: worker.url }),
    "gRPC JSON over h2c": () =>
      createGrpcTransport({ baseUrl: worker.url, useBinaryFormat: false }),
    "gRPC-Web binary over HTTP/1.1": () =>
      createGrpcWebTransport({ baseUrl: worker.url, httpVersion: "1.1" }),
    "gRPC-Web JSON over HTTP/1.1": () =>
      createGrpcWebTransport({ baseUrl: worker.url, httpVersion: "1.1", useBinaryFormat: false }),
  };
  for (const [name, transport] of Object.entries(transports)) {
    it(`answers ${name}, unary and server streaming`, async () => {
      const client = createClient(WorkerService, transport());
      const res = await client.compute({ iterations: 3, input: "x" });
      expect(res.workerId).toBe("w-protocols");
      expect(res.iterations).toBe(3);
      const steps: number[] = [];
      for await (const progress of client.watch({ steps: 3, iterationsPerStep: 1 }))
        steps.push(progress.step);
      expect(steps).toEqual([1, 2, 3]);
    });
  }
});

describe("bad input gets the right code and the server keeps serving", () => {
  const client = () =>
    createClient(
      WorkerService,
      createConnectTransport({ baseUrl: worker.url, httpVersion: "1.1" }),
    );

  it("refuses an oversized request with ResourceExhausted", async () => {
    const err = await client()
      .compute({ input: "x".repeat(3000) })
      .catch((e) => ConnectError.from(e));
    expect(err).toBeInstanceOf(ConnectError);
    expect((err as ConnectError).code).toBe(Code.ResourceExhausted);
    expect((err as ConnectError).rawMessage).toMatch(/2048/);
  });

  it("refuses malformed JSON with invalid_argument", async () => {
    const res = await curl([
      `${worker.url}/quartet.worker.v1.WorkerService/Compute`,
      "-H",
      "Content-Type: application/json",
      "-d",
      '{"iterations": 1,',
    ]);
    expect(res.status).toBe(400);
    const body = JSON.parse(res.body);
    expect(body.code).toBe("invalid_argument");
    expect(body.message).toMatch(/json|JSON|parse|unexpected/i);
  });

  it("refuses a wrong field type with invalid_argument naming the field", async () => {
    const res = await curl([
      `${worker.url}/quartet.worker.v1.WorkerService/Compute`,
      "-H",
      "Content-Type: application/json",
      "-d",
      '{"iterations": "many"}',
    ]);
    expect(res.status).toBe(400);
    const body = JSON.parse(res.body);
    expect(body.code).toBe("invalid_argument");
    expect(body.message).toMatch(/iterations/);
  });

  it("refuses out-of-range values with InvalidArgument naming the field", async () => {
    const cases: [Parameters<ReturnType<typeof client>["compute"]>[0], RegExp][] = [
      [
        { iterations: 20_000_000 },
        /^iterations: 20000000 is above this worker.s limit of 100000 \(--max-iterations\)/,
      ],
      [{ fault: { delayMs: 120_000 } }, /^fault\.delay_ms:/],
      [{ fault: { failCode: 14, failFraction: 2 } }, /^fault\.fail_fraction: 2 is not in \[0, 1\]/],
    ];
    for (const [request, message] of cases) {
      const err = ConnectError.from(
        await client()
          .compute(request)
          .catch((e) => e),
      );
      expect(err.code).toBe(Code.InvalidArgument);
      expect(err.rawMessage).toMatch(message);
    }
    const fanout = ConnectError.from(
      await client()
        .fanout({ peers: ["not a url"], request: {} })
        .catch((e) => e),
    );
    expect(fanout.code).toBe(Code.InvalidArgument);
    expect(fanout.rawMessage).toMatch(/^peers\[0\]: "not a url" is not a URL/);
    const external = ConnectError.from(
      await client()
        .fanout({ peers: ["http://192.0.2.1:7202"], request: {} })
        .catch((e) => e),
    );
    expect(external.code).toBe(Code.PermissionDenied);
  });

  it("answers an unknown method with 404 / Unimplemented", async () => {
    const res = await curl([
      `${worker.url}/quartet.worker.v1.WorkerService/Nope`,
      "-H",
      "Content-Type: application/json",
      "-d",
      "{}",
    ]);
    expect(res.status).toBe(404);
    // A gRPC client sees the same missing route as Unimplemented.
    const missing = { ...WorkerService.method.compute, name: "Nope" };
    const grpc = createGrpcTransport({ baseUrl: worker.url });
    const err = ConnectError.from(
      await grpc
        .unary(missing, undefined, undefined, undefined, create(ComputeRequestSchema))
        .catch((e) => e),
    );
    expect(err.code).toBe(Code.Unimplemented);
  });

  it("injects the fault it is asked for", async () => {
    const err = ConnectError.from(
      await client()
        .compute({ fault: { failCode: 14, failMessage: "asked to fail" } })
        .catch((e) => e),
    );
    expect(err.code).toBe(Code.Unavailable);
    expect(err.rawMessage).toBe("asked to fail");
  });

  it("still serves after all of that", async () => {
    const res = await client().compute({ iterations: 1, input: "after" });
    expect(res.workerId).toBe("w-protocols");
  });
});

describe("browsers and tools", () => {
  it("answers a CORS preflight from an allowed origin and refuses other origins", async () => {
    const preflight = (origin: string) =>
      curl([
        "-X",
        "OPTIONS",
        `${worker.url}/quartet.worker.v1.WorkerService/Compute`,
        "-H",
        `Origin: ${origin}`,
        "-H",
        "Access-Control-Request-Method: POST",
        "-H",
        "Access-Control-Request-Headers: content-type, connect-protocol-version, traceparent",
      ]);
    const allowed = await preflight("http://localhost:5173");
    expect(allowed.status).toBe(204);
    expect(allowed.headers).toMatch(/access-control-allow-origin: http:\/\/localhost:5173/i);
    expect(allowed.headers).toMatch(/access-control-allow-headers:.*Connect-Protocol-Version/i);
    expect(allowed.headers).toMatch(/access-control-allow-methods: GET, POST/i);
    const refused = await preflight("https://evil.example");
    expect(refused.status).toBe(403);
    expect(refused.headers).not.toMatch(/access-control-allow-origin/i);
  });

  it("exposes Prometheus metrics with the RPC server duration by method and code", async () => {
    const res = await curl([`${worker.url}/metrics`]);
    expect(res.status).toBe(200);
    expect(res.body).toMatch(/rpc_server_duration\w*_bucket\{[^}]*rpc_method="Compute"/);
    expect(res.body).toMatch(/rpc_service="quartet\.worker\.v1\.WorkerService"/);
  });

  it("lists and calls methods through reflection with buf curl", async () => {
    const buf = ["curl", "--http2-prior-knowledge"];
    const list = await run("buf", [...buf, "--list-methods", worker.url]);
    expect(list.stdout.split("\n")).toEqual(
      expect.arrayContaining([
        "quartet.worker.v1.WorkerService/Compute",
        "quartet.worker.v1.WorkerService/Fanout",
        "quartet.worker.v1.WorkerService/Watch",
        "grpc.health.v1.Health/Check",
      ]),
    );
    const call = await run("buf", [
      ...buf,
      "--data",
      '{"iterations": 0, "input": "buf"}',
      `${worker.url}/quartet.worker.v1.WorkerService/Compute`,
    ]);
    expect(JSON.parse(call.stdout)).toEqual({
      digest: await sha256Of("buf"),
      workerId: "w-protocols",
    });
  });
});
