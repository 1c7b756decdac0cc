// Response compression is the operator's choice (--compress-min-bytes): by default a server
// answers uncompressed even to a client that accepts gzip, and compressed requests are
// accepted either way. Real server processes, raw requests, so the bytes on the wire are seen.
import http from "node:http";
import { gunzipSync, gzipSync } from "node:zlib";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { encodeEnvelope } from "@connectrpc/connect/protocol";
import {
  ComputeRequestSchema,
  ComputeResponseSchema,
} from "@quartet/proto/quartet/worker/v1/worker_pb";
import { afterEach, describe, expect, it } from "vitest";
import { rawGrpc } from "./fixtures.ts";
import { computePath, startServer, stopServers } from "./processes.ts";

afterEach(stopServers);

/** An input whose echo, the answer, is well over connect's 1 KiB threshold. */
const input = "abcdefghij".repeat(400);
const requestMessage = toBinary(ComputeRequestSchema, create(ComputeRequestSchema, { input }));

/** A gRPC Compute call accepting gzip answers; the answer's flags and digest. */
async function grpcCompute(url: string, request: Uint8Array, headers: Record<string, string> = {}) {
  const answer = await rawGrpc(url, computePath, [request], {
    "grpc-accept-encoding": "gzip",
    ...headers,
  });
  expect(answer.trailers["grpc-status"]).toBe("0");
  const flags = answer.body[0];
  const message = answer.body.subarray(5);
  const plain = flags === 1 ? gunzipSync(message) : message;
  return {
    flags,
    wireBytes: message.length,
    digest: fromBinary(ComputeResponseSchema, plain).digest,
  };
}

/** A Connect JSON Compute call over HTTP/1.1 accepting gzip; its content-encoding and digest. */
function connectCompute(url: string): Promise<{ encoding: string | undefined; digest: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      `${url}${computePath}`,
      {
        method: "POST",
        headers: { "content-type": "application/json", "accept-encoding": "gzip" },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => {
          const encoding = res.headers["content-encoding"];
          const body = Buffer.concat(chunks);
          const text = (encoding === "gzip" ? gunzipSync(body) : body).toString();
          resolve({ encoding, digest: (JSON.parse(text) as { digest: string }).digest });
        });
      },
    );
    req.on("error", reject);
    req.end(JSON.stringify({ input }));
  });
}

describe("response compression", () => {
  it("is off by default: a large answer goes uncompressed to a client that accepts gzip", async () => {
    const server = await startServer();
    const grpc = await grpcCompute(server.url, encodeEnvelope(0, requestMessage));
    expect(grpc).toMatchObject({ flags: 0, digest: input });
    expect(grpc.wireBytes).toBeGreaterThan(input.length);
    const connect = await connectCompute(server.url);
    expect(connect).toEqual({ encoding: undefined, digest: input });
  });

  it("compresses answers of --compress-min-bytes or more when set", async () => {
    const server = await startServer(["--compress-min-bytes", "1024"]);
    const grpc = await grpcCompute(server.url, encodeEnvelope(0, requestMessage));
    expect(grpc).toMatchObject({ flags: 1, digest: input });
    expect(grpc.wireBytes).toBeLessThan(input.length / 10);
    const connect = await connectCompute(server.url);
    expect(connect).toEqual({ encoding: "gzip", digest: input });
  });

  it("accepts a gzip-compressed request either way", async () => {
    const server = await startServer();
    const grpc = await grpcCompute(server.url, encodeEnvelope(1, gzipSync(requestMessage)), {
      "grpc-encoding": "gzip",
    });
    expect(grpc).toMatchObject({ flags: 0, digest: input });
  });
});
