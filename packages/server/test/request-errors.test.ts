import { gzipSync } from "node:zlib";
import { create, toBinary } from "@bufbuild/protobuf";
import { encodeEnvelope } from "@connectrpc/connect/protocol";
import { ComputeRequestSchema, WorkerService } from "@quartet/proto/quartet/worker/v1/worker_pb";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Server } from "../src/index.ts";
import { grpcStatus, rawGrpc, serveForTest } from "./fixtures.ts";

let server: Server;
beforeAll(async () => {
  server = await serveForTest();
});
afterAll(() => server?.close());

const computeUrl = () => `${server.url}/${WorkerService.typeName}/Compute`;

/** A Connect unary POST; resolves with the HTTP status and the JSON body. */
async function connectPost(body: Uint8Array | string, headers: Record<string, string>) {
  const res = await fetch(computeUrl(), {
    method: "POST",
    headers: { "connect-protocol-version": "1", ...headers },
    body,
  });
  const json = res.headers.get("content-type")?.startsWith("application/json")
    ? ((await res.json()) as { code?: string; message?: string })
    : {};
  return { status: res.status, json };
}

/** A gRPC call over h2c with a raw body; resolves with grpc-status and grpc-message. */
async function grpcPost(body: Uint8Array) {
  return grpcStatus(await rawGrpc(server.url, `/${WorkerService.typeName}/Compute`, [body]));
}

const valid = toBinary(ComputeRequestSchema, create(ComputeRequestSchema, { input: "x" }));
// A length-delimited field that says 5 bytes follow; one does.
const truncated = new Uint8Array([0x0a, 0x05, 0x41]);

describe("malformed requests are the client's error (InvalidArgument), not Internal", () => {
  it("a malformed binary protobuf body, over Connect and gRPC", async () => {
    const res = await connectPost(truncated, { "content-type": "application/proto" });
    expect(res.status).toBe(400);
    expect(res.json.code).toBe("invalid_argument");
    expect(res.json.message).toMatch(/not a valid binary protobuf message/);
    const grpc = await grpcPost(encodeEnvelope(0, truncated));
    expect(grpc.code).toBe("3");
    expect(grpc.message).toMatch(/not a valid binary protobuf message/);
  });

  it("a corrupt gzip body", async () => {
    const gz = gzipSync(valid);
    for (const body of [gz.subarray(0, gz.length - 6), new Uint8Array([1, 2, 3, 4])]) {
      const res = await connectPost(body, {
        "content-type": "application/proto",
        "content-encoding": "gzip",
      });
      expect(res.status).toBe(400);
      expect(res.json.code).toBe("invalid_argument");
      expect(res.json.message).toMatch(/not valid gzip/);
    }
    const ok = await connectPost(gz, {
      "content-type": "application/proto",
      "content-encoding": "gzip",
    });
    expect(ok.status).toBe(200);
  });

  it("a request envelope with flag 0x80 (trailers, for responses only)", async () => {
    const grpc = await grpcPost(encodeEnvelope(0x80, valid));
    expect(grpc.code).toBe("3");
    expect(grpc.message).toMatch(/flags 0x80/);
    const web = await fetch(computeUrl(), {
      method: "POST",
      headers: { "content-type": "application/grpc-web+proto", "x-grpc-web": "1" },
      body: encodeEnvelope(0x80, valid),
    });
    expect(web.headers.get("grpc-status") ?? (await web.text())).toMatch(/3/);
    expect((await grpcPost(encodeEnvelope(0, valid))).code).toBe("0");
  });
});

describe("JSON requests are read strictly", () => {
  it("refuses an unknown enum name, naming the field and the accepted values", async () => {
    const res = await connectPost(JSON.stringify({ fault: { failCode: "UNAVAILABLE" } }), {
      "content-type": "application/json",
    });
    expect(res.status).toBe(400);
    expect(res.json.code).toBe("invalid_argument");
    expect(res.json.message).toMatch(/fault\.failCode/);
    expect(res.json.message).toMatch(/"UNAVAILABLE"/);
    expect(res.json.message).toMatch(/CODE_UNAVAILABLE/);
    const ok = await connectPost(
      JSON.stringify({ input: "y", fault: { failCode: "CODE_UNSPECIFIED" } }),
      {
        "content-type": "application/json",
      },
    );
    expect(ok.status).toBe(200);
  });

  it("refuses an unknown field, naming it", async () => {
    const res = await connectPost(JSON.stringify({ inptu: "x" }), {
      "content-type": "application/json",
    });
    expect(res.status).toBe(400);
    expect(res.json.code).toBe("invalid_argument");
    expect(res.json.message).toMatch(/"inptu" is unknown/);
  });

  it("keeps binary forward-compatible: an unknown field number is accepted", async () => {
    // Field 99, varint 1: a field a newer client may send.
    const body = new Uint8Array([...valid, 0x98, 0x06, 0x01]);
    const res = await connectPost(body, { "content-type": "application/proto" });
    expect(res.status).toBe(200);
  });
});
