// What a handler's signal tells it, and how request bodies reach it, through serve()'s own
// node adapter (node-adapter.ts), which stands in for connect-node's connectNodeAdapter.
import { create, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import {
  createConnectTransport,
  createGrpcTransport,
  createGrpcWebTransport,
} from "@connectrpc/connect-node";
import { RaftTransportService, SendRequestSchema } from "@quartet/proto/quartet/raft/v1/raft_pb";
import { WorkerService } from "@quartet/proto/quartet/worker/v1/worker_pb";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Server } from "../src/index.ts";
import { grpcStatus, rawGrpc, serveForTest } from "./fixtures.ts";

/** The signal of each Compute call, by its input; `started` resolves once the handler runs. */
const signals = new Map<string, AbortSignal>();
const started = new Map<string, () => void>();
let server: Server;

beforeAll(async () => {
  server = await serveForTest({
    routes: (router) => {
      router.service(WorkerService, {
        async compute(req, ctx) {
          signals.set(req.input, ctx.signal);
          started.get(req.input)?.();
          if (req.fault?.delayMs) {
            // Waits until the call is cancelled (or the delay passes).
            await new Promise<void>((resolve) => {
              const timer = setTimeout(resolve, req.fault!.delayMs);
              ctx.signal.addEventListener("abort", () => {
                clearTimeout(timer);
                resolve();
              });
            });
          }
          return { digest: req.input, iterations: 0, workerId: "test" };
        },
      });
      router.service(RaftTransportService, {
        async send(requests) {
          let received = 0n;
          for await (const r of requests) received += BigInt(r.messages.length);
          return { received };
        },
      });
    },
  });
});
afterAll(() => server?.close());

const transports = {
  grpc: () => createGrpcTransport({ baseUrl: server.url }),
  "connect over HTTP/2": () => createConnectTransport({ baseUrl: server.url, httpVersion: "2" }),
  "connect over HTTP/1.1": () =>
    createConnectTransport({ baseUrl: server.url, httpVersion: "1.1" }),
  "grpc-web": () => createGrpcWebTransport({ baseUrl: server.url, httpVersion: "1.1" }),
};

describe("a handler's signal", () => {
  for (const [name, transport] of Object.entries(transports)) {
    it(`is aborted with an AbortError once its call has ended normally (${name})`, async () => {
      const client = createClient(WorkerService, transport());
      const input = `ended ${name}`;
      expect((await client.compute({ input })).digest).toBe(input);
      const signal = signals.get(input)!;
      await expect.poll(() => signal.aborted).toBe(true);
      // What code that outlives its call reads, e.g. a `throwIfAborted()` after an await.
      expect(signal.reason).toBeInstanceOf(DOMException);
      expect((signal.reason as DOMException).name).toBe("AbortError");
      expect(ConnectError.from(signal.reason).code).toBe(Code.Canceled);
    });
  }

  it("is aborted with Canceled when an HTTP/2 client resets the stream mid-call", async () => {
    const input = "cancelled";
    const running = new Promise<void>((resolve) => started.set(input, resolve));
    const client = createClient(WorkerService, transports.grpc());
    const controller = new AbortController();
    const call = client.compute(
      { input, fault: { delayMs: 60_000 } },
      { signal: controller.signal },
    );
    await running;
    controller.abort();
    await expect(call).rejects.toMatchObject({ code: Code.Canceled });
    const signal = signals.get(input)!;
    await expect.poll(() => signal.aborted).toBe(true);
    const reason = signal.reason as ConnectError;
    expect(reason).toBeInstanceOf(ConnectError);
    expect(reason.code).toBe(Code.Canceled);
    expect(reason.rawMessage).toMatch(/http\/2 stream closed with error code CANCEL \(0x8\)/);
  });
});

describe("a client-streaming request body", () => {
  const batch = toBinary(
    SendRequestSchema,
    create(SendRequestSchema, { clusterId: 1n, messages: [{ term: 1n }, { term: 2n }] }),
  );
  const envelope = (flags: number) => {
    const out = new Uint8Array(5 + batch.length);
    out[0] = flags;
    new DataView(out.buffer).setUint32(1, batch.length);
    out.set(batch, 5);
    return out;
  };

  /** A raw gRPC Send with the given envelopes, one write each; resolves with grpc-status. */
  const send = async (envelopes: Uint8Array[]) =>
    grpcStatus(await rawGrpc(server.url, `/${RaftTransportService.typeName}/Send`, envelopes));

  it("streams to the handler, every message of it", async () => {
    expect((await send([envelope(0), envelope(0), envelope(0)])).code).toBe("0");
  });

  it("with an envelope flagged 0x02 (end of stream, for responses only) is InvalidArgument", async () => {
    const answer = await send([envelope(0), envelope(0x02)]);
    expect(answer.code).toBe(String(Code.InvalidArgument));
    expect(answer.message).toMatch(/flags 0x02/);
  });
});
