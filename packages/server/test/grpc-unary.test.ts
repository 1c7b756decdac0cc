// serve() answers a unary gRPC call on a direct path of its own (grpc-unary.ts) instead of
// connect's streaming pipeline: what a client reads must not change. Each case is sent, as
// raw HTTP/2, to serve() and to a bare connect-node server with the same implementation,
// and the two answers (status, headers, body bytes, trailers) must be the same.
import http2 from "node:http2";
import { create, toBinary } from "@bufbuild/protobuf";
import { encodeEnvelope } from "@connectrpc/connect/protocol";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { ComputeRequestSchema, WorkerService } from "@quartet/proto/quartet/worker/v1/worker_pb";
import { pino } from "pino";
import { afterAll, beforeAll, expect, it } from "vitest";
import { type Server, serve } from "../src/index.ts";
import { compareRoutes, rawGrpc } from "./fixtures.ts";

let quartet: Server;
let bare: http2.Http2Server;
let bareUrl: string;
beforeAll(async () => {
  quartet = await serve({
    name: "test",
    routes: compareRoutes,
    logger: pino({ level: "silent" }),
    // connect's default, so the direct path's compression is compared with connect's too
    // (serve() compresses no response by default: compression.test.ts).
    compressMinBytes: 1024,
  });
  bare = http2.createServer(connectNodeAdapter({ routes: compareRoutes }));
  await new Promise<void>((resolve) => bare.listen(0, "127.0.0.1", resolve));
  bareUrl = `http://127.0.0.1:${(bare.address() as { port: number }).port}`;
});
afterAll(async () => {
  await quartet?.close();
  bare?.close();
});

const request = (input: string, iterations = 0) =>
  encodeEnvelope(
    0,
    toBinary(ComputeRequestSchema, create(ComputeRequestSchema, { input, iterations })),
  );

/** One raw gRPC call: everything the client receives but the date. */
async function answer(url: string, body: Uint8Array, headers: Record<string, string>) {
  const {
    head,
    body: bytes,
    trailers,
  } = await rawGrpc(url, `/${WorkerService.typeName}/Compute`, [body], headers);
  const { date: _, ...rest } = head;
  return { head: rest, body: bytes.toString("hex"), trailers };
}

const cases: [string, Uint8Array, Record<string, string>][] = [
  ["a success, with response headers and trailers", request("x"), {}],
  ["a ConnectError with metadata", request("fail"), {}],
  ["an exception (internal error)", request("crash"), {}],
  ["a deadline within the limit", request("x"), { "grpc-timeout": "5S" }],
  ["what the handler's context holds", request("context"), { "grpc-timeout": "5S", "x-test": "t" }],
  ["a large answer, gzip accepted", request("abcdefghij", 300), { "grpc-accept-encoding": "gzip" }],
  ["a small answer, gzip accepted", request("ab"), { "grpc-accept-encoding": "gzip" }],
  [
    "response headers and trailers, gzip accepted",
    request("x"),
    { "grpc-accept-encoding": "identity,deflate,gzip" },
  ],
  ["no request message", new Uint8Array(0), {}],
  ["two request messages", Buffer.concat([request("a"), request("b")]), {}],
  ["a bad timeout", request("x"), { "grpc-timeout": "soon" }],
  ["an unknown request encoding", request("x"), { "grpc-encoding": "zstd" }],
];

for (const [name, body, headers] of cases) {
  it(`answers a unary gRPC call as connect-node does: ${name}`, async () => {
    const theirs = await answer(bareUrl, body, headers);
    const ours = await answer(quartet.url, body, headers);
    expect(ours).toEqual(theirs);
    expect(ours.head[":status"]).toBe(200);
  });
}
