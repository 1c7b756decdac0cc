// serve() answers a unary Connect call on a direct path of its own (connect-unary.ts) instead
// of connect's handler: what a client reads must not change. Each case is sent, as raw
// HTTP/1.1 and as raw HTTP/2, to serve() and to a bare connect-node server with the same
// implementation and the options serve() gives connect, and the two answers (status, headers
// but the date, body bytes) must be the same. Which path serve() took is told by connect-node's
// response writer, which serve() calls on connect's path only (the bare server's adapter calls
// it inside connect-node, where the mock does not reach).
import http from "node:http";
import http2 from "node:http2";
import { gzipSync } from "node:zlib";
import { create, toBinary } from "@bufbuild/protobuf";
import { ConnectError } from "@connectrpc/connect";
import { connectNodeAdapter, universalResponseToNodeResponse } from "@connectrpc/connect-node";
import { ComputeRequestSchema, WorkerService } from "@quartet/proto/quartet/worker/v1/worker_pb";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { defaultLimits, type Server, serve } from "../src/index.ts";
import { createDecodeErrorGate, requestCompressions, strictJson } from "../src/request-errors.ts";
import { cancelled, compareRoutes, started } from "./fixtures.ts";

vi.mock("@connectrpc/connect-node", async (importOriginal) => {
  const original = await importOriginal<typeof import("@connectrpc/connect-node")>();
  return {
    ...original,
    universalResponseToNodeResponse: vi.fn(original.universalResponseToNodeResponse),
  };
});
const connectPathCalls = () => vi.mocked(universalResponseToNodeResponse).mock.calls.length;

/** serve()'s request limit, small enough to send a request over it. */
const readMaxBytes = 1024;

let quartet: Server;
let bare2: http2.Http2Server;
let bare1: http.Server;
const agent = new http.Agent({ keepAlive: true });
beforeAll(async () => {
  quartet = await serve({
    name: "test",
    routes: compareRoutes,
    logger: pino({ level: "silent" }),
    limits: { maxRequestBytes: readMaxBytes },
    // connect's default, so the direct path's compression is compared with connect's too
    // (serve() compresses no response by default: compression.test.ts).
    compressMinBytes: 1024,
  });
  // The options serve() gives connect that change answers (request-errors.ts, limits.ts).
  const decodeErrors = createDecodeErrorGate();
  decodeErrors.learn([WorkerService]);
  const adapter = connectNodeAdapter({
    routes: compareRoutes,
    jsonOptions: strictJson,
    acceptCompression: requestCompressions,
    readMaxBytes,
    maxTimeoutMs: defaultLimits.maxTimeoutMs,
    requestGate: decodeErrors.gate,
  });
  bare2 = http2.createServer(adapter);
  bare1 = http.createServer(adapter);
  // serve() keeps idle HTTP/1.1 connections this long, and says so in its Keep-Alive header.
  bare1.keepAliveTimeout = defaultLimits.idleTimeoutMs;
  await Promise.all(
    [bare1, bare2].map((s) => new Promise<void>((resolve) => s.listen(0, "127.0.0.1", resolve))),
  );
});
afterAll(async () => {
  agent.destroy();
  await quartet?.close();
  bare1?.close();
  bare2?.close();
});

const urlOf = (server: http.Server | http2.Http2Server) =>
  `http://127.0.0.1:${(server.address() as { port: number }).port}`;

const computePath = `/${WorkerService.typeName}/Compute`;

interface Call {
  method?: string;
  path?: string;
  headers: Record<string, string>;
  body?: Uint8Array | string;
}

interface Answer {
  status: unknown;
  /** In the order they came (HTTP/1.1), or by name (HTTP/2); without the date. */
  headers: unknown;
  body: string;
}

/** One raw HTTP/1.1 request, over a kept-alive connection as most clients send them. */
function h1(url: string, call: Call, sent?: (req: http.ClientRequest) => void): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      `${url}${call.path ?? computePath}`,
      { method: call.method ?? "POST", headers: call.headers, agent },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => {
          const headers: string[] = [];
          for (let i = 0; i < res.rawHeaders.length; i += 2) {
            if (res.rawHeaders[i]!.toLowerCase() === "date") continue;
            headers.push(`${res.rawHeaders[i]}: ${res.rawHeaders[i + 1]}`);
          }
          resolve({ status: res.statusCode, headers, body: Buffer.concat(chunks).toString("hex") });
        });
      },
    );
    req.on("error", reject);
    req.end(call.body);
    sent?.(req);
  });
}

/** One raw HTTP/2 request on a connection of its own. */
async function h2(
  url: string,
  call: Call,
  sent?: (stream: http2.ClientHttp2Stream) => void,
): Promise<Answer> {
  const session = http2.connect(url);
  try {
    const stream = session.request({
      ":method": call.method ?? "POST",
      ":path": call.path ?? computePath,
      ...call.headers,
    });
    stream.end(call.body);
    sent?.(stream);
    const chunks: Buffer[] = [];
    let head: http2.IncomingHttpHeaders = {};
    stream.on("response", (h) => (head = h));
    stream.on("data", (c: Buffer) => chunks.push(c));
    await new Promise((resolve) => stream.on("close", resolve));
    const { date: _, ":status": status, ...headers } = head;
    return { status, headers, body: Buffer.concat(chunks).toString("hex") };
  } finally {
    session.close();
  }
}

const json = { "content-type": "application/json", "connect-protocol-version": "1" };
const proto = { "content-type": "application/proto", "connect-protocol-version": "1" };
const binary = (input: string, iterations = 0) =>
  toBinary(ComputeRequestSchema, create(ComputeRequestSchema, { input, iterations }));
const overLimit = `{"input":"${"x".repeat(readMaxBytes - 10)}"}`;

/** Each case: its name, the call, and whether serve() answers it on its fast path. */
const cases: [string, Call, "fast" | "connect"][] = [
  [
    "a JSON success, with response headers and trailers",
    { headers: json, body: '{"input":"x"}' },
    "fast",
  ],
  [
    "a JSON success, charset given",
    { headers: { ...json, "content-type": "application/json; charset=utf-8" }, body: "{}" },
    "fast",
  ],
  ["a binary success", { headers: proto, body: binary("x") }, "fast"],
  ["a ConnectError with metadata", { headers: json, body: '{"input":"fail"}' }, "fast"],
  ["a ConnectError, binary request", { headers: proto, body: binary("fail") }, "fast"],
  ["an exception (internal error)", { headers: json, body: '{"input":"crash"}' }, "fast"],
  [
    "what the handler's context holds",
    {
      headers: { ...json, "connect-timeout-ms": "5000", "x-test": "t" },
      body: '{"input":"context"}',
    },
    "fast",
  ],
  [
    "a large answer, gzip accepted",
    { headers: { ...json, "accept-encoding": "gzip" }, body: binary("abcdefghij", 300) },
    "fast",
  ],
  [
    "a large binary answer, gzip accepted",
    { headers: { ...proto, "accept-encoding": "gzip" }, body: binary("abcdefghij", 300) },
    "fast",
  ],
  [
    "a small answer, gzip accepted",
    { headers: { ...json, "accept-encoding": "gzip" }, body: '{"input":"ab"}' },
    "fast",
  ],
  [
    "an uncompressed request marked identity",
    { headers: { ...json, "content-encoding": "identity" }, body: '{"input":"x"}' },
    "fast",
  ],
  ["malformed JSON", { headers: json, body: '{"input":' }, "fast"],
  ["a JSON body with an unknown field", { headers: json, body: '{"input":"x","nope":1}' }, "fast"],
  [
    "a JSON body with an unknown enum name",
    { headers: json, body: '{"fault":{"failCode":"NOPE"}}' },
    "fast",
  ],
  ["binary garbage", { headers: proto, body: new Uint8Array([0xff, 0xff, 0xff]) }, "fast"],
  [
    "no connect-protocol-version",
    { headers: { "content-type": "application/json" }, body: "{}" },
    "fast",
  ],
  [
    "a bad connect-timeout-ms",
    { headers: { ...json, "connect-timeout-ms": "soon" }, body: '{"input":"x"}' },
    "connect",
  ],
  [
    "a gzip-compressed request",
    { headers: { ...json, "content-encoding": "gzip" }, body: gzipSync('{"input":"x"}') },
    "connect",
  ],
  [
    "an unknown request encoding",
    { headers: { ...json, "content-encoding": "zstd" }, body: '{"input":"x"}' },
    "connect",
  ],
  ["a request over the read limit", { headers: json, body: overLimit }, "connect"],
  [
    "an unsupported content type",
    { headers: { "content-type": "text/plain" }, body: "x" },
    "connect",
  ],
  [
    "a GET",
    {
      method: "GET",
      path: `${computePath}?encoding=json&connect=v1&message=${encodeURIComponent('{"input":"x"}')}`,
      headers: {},
    },
    "connect",
  ],
];

for (const [version, send] of [
  ["HTTP/1.1", h1],
  ["HTTP/2", h2],
] as const) {
  describe(`a unary Connect call over ${version}`, () => {
    for (const [name, call, path] of cases) {
      it(`is answered as connect-node answers it: ${name}`, async () => {
        const theirs = await send(urlOf(version === "HTTP/2" ? bare2 : bare1), call);
        const before = connectPathCalls();
        const ours = await send(quartet.url, call);
        expect(ours).toEqual(theirs);
        expect(connectPathCalls() - before).toBe(path === "fast" ? 0 : 1);
      });
    }

    it("whose client goes away mid-call aborts the handler's signal as connect-node does", async () => {
      const reasons: unknown[] = [];
      for (const [side, url] of [
        ["bare", urlOf(version === "HTTP/2" ? bare2 : bare1)],
        ["serve", quartet.url],
      ]) {
        const input = `hang ${version} ${side}`;
        const reason = new Promise((resolve) => cancelled.set(input, resolve));
        const running = new Promise<void>((resolve) => started.set(input, resolve));
        const call = { headers: json, body: JSON.stringify({ input }) };
        const answer =
          version === "HTTP/2"
            ? h2(url, call, (stream) =>
                running.then(() => stream.close(http2.constants.NGHTTP2_CANCEL)),
              )
            : h1(url, call, (req) => running.then(() => req.destroy()));
        answer.catch(() => {});
        const r = await reason;
        reasons.push([r?.constructor.name, ConnectError.from(r).code, (r as Error).message]);
      }
      expect(reasons[1]).toEqual(reasons[0]);
    });
  });
}
