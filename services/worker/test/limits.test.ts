import { once } from "node:events";
import { createServer, type Http2Server } from "node:http2";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { connectNodeAdapter, createConnectTransport } from "@connectrpc/connect-node";
import { WorkerService } from "@quartet/proto/quartet/worker/v1/worker_pb";
import type { ServiceProcess } from "@quartet/server/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startWorker } from "./workers.ts";

// Two real workers: `bounded` keeps the default --max-iterations and sets small fan-out and
// timeout limits; `generous` allows huge Computes but ends calls without a timeout quickly, to
// show that such a Compute stops burning CPU when the server's limit passes.
let bounded: ServiceProcess;
let generous: ServiceProcess;
beforeAll(async () => {
  [bounded, generous] = await Promise.all([
    startWorker("w-bounded", [
      ...["--max-timeout-ms", "1000", "--max-fanout-peers", "4"],
      ...["--max-fanout-iterations", "1000", "--max-fanout-depth", "1"],
    ]),
    startWorker("w-generous", ["--max-iterations", "1000000000", "--max-timeout-ms", "500"]),
  ]);
});
afterAll(async () => {
  await Promise.all([bounded?.kill("SIGTERM"), generous?.kill("SIGTERM")]);
});

const clientOf = (worker: ServiceProcess) =>
  createClient(WorkerService, createConnectTransport({ baseUrl: worker.url, httpVersion: "1.1" }));
const failure = (call: Promise<unknown>) =>
  call.then(
    () => {
      throw new Error("the call succeeded; it should have been refused");
    },
    (e: unknown) => ConnectError.from(e),
  );

describe("the work one call can demand is bounded", () => {
  it("refuses a Compute above the default --max-iterations with InvalidArgument naming the flag", async () => {
    const err = await failure(clientOf(bounded).compute({ iterations: 1_000_000 }));
    expect(err.code).toBe(Code.InvalidArgument);
    expect(err.rawMessage).toBe(
      "iterations: 1000000 is above this worker's limit of 100000 (--max-iterations)",
    );
  });

  it("refuses a Watch whose steps x iterations_per_step is above --max-iterations", async () => {
    const call = (async () => {
      for await (const _ of clientOf(bounded).watch({ steps: 10, iterationsPerStep: 20_000 })) {
      }
    })();
    const err = await failure(call);
    expect(err.code).toBe(Code.InvalidArgument);
    expect(err.rawMessage).toMatch(
      /^steps x iterations_per_step: 10 x 20000 = 200000 is above .*--max-iterations/,
    );
  });

  it("ends a call that came without a timeout at --max-timeout-ms with DeadlineExceeded", async () => {
    const err = await failure(clientOf(bounded).compute({ fault: { delayMs: 30_000 } }));
    // @quartet/server gives a unary call without a timeout its --max-timeout-ms.
    expect(err.code).toBe(Code.DeadlineExceeded);
  });

  it("ends a Watch that came without a timeout at --max-timeout-ms", async () => {
    const steps: number[] = [];
    const call = (async () => {
      for await (const r of clientOf(bounded).watch({ steps: 3, stepDelayMs: 5000 }))
        steps.push(r.step);
    })();
    const err = await failure(call);
    expect(err.code).toBe(Code.DeadlineExceeded);
    expect(steps).toEqual([1]);
  });

  it("stops hashing when a Compute without a timeout reaches --max-timeout-ms", async () => {
    const aborted = generous.waitForLog((l) => l.msg === "compute aborted");
    const err = await failure(clientOf(generous).compute({ iterations: 1_000_000_000 }));
    expect(err.code).toBe(Code.DeadlineExceeded);
    expect(await aborted).toMatchObject({ reason: expect.stringMatching(/timed out/) });
  });

  it("refuses a Fanout naming more peers than --max-fanout-peers", async () => {
    const peers = Array.from({ length: 5 }, () => bounded.url);
    const err = await failure(clientOf(bounded).fanout({ peers, request: {} }));
    expect(err.code).toBe(Code.InvalidArgument);
    expect(err.rawMessage).toBe(
      "peers: 5 peers is above this worker's limit of 4 (--max-fanout-peers)",
    );
  });

  it("refuses a Fanout whose peers x iterations is above --max-fanout-iterations, and serves one at the limit", async () => {
    const peers = [bounded.url, bounded.url];
    const err = await failure(clientOf(bounded).fanout({ peers, request: { iterations: 600 } }));
    expect(err.code).toBe(Code.InvalidArgument);
    expect(err.rawMessage).toBe(
      "peers x request.iterations: 2 x 600 = 1200 is above this worker's limit of 1000 (--max-fanout-iterations)",
    );
    const ok = await clientOf(bounded).fanout({ peers, request: { iterations: 500 } });
    expect(ok.results.map((r) => r.outcome.case)).toEqual(["response", "response"]);
  });

  it("refuses a Fanout that was reached through another Fanout, past --max-fanout-depth", async () => {
    const err = await failure(
      clientOf(bounded).fanout(
        { peers: [bounded.url], request: {} },
        { headers: { "quartet-fanout-depth": "1" } },
      ),
    );
    expect(err.code).toBe(Code.FailedPrecondition);
    expect(err.rawMessage).toMatch(/nested 1 deep at most \(--max-fanout-depth\)/);
  });
});

describe("a Fanout loop through a relay", () => {
  // A peer that answers Compute by calling the worker's Fanout back with itself as the peer,
  // forwarding the depth header as a proxy would: without the depth limit this never ends.
  let relay: Http2Server;
  let relayUrl: string;
  beforeAll(async () => {
    relay = createServer(
      connectNodeAdapter({
        routes: (router) =>
          router.service(WorkerService, {
            async compute(_req, ctx) {
              const depth = ctx.requestHeader.get("quartet-fanout-depth");
              await createClient(
                WorkerService,
                createConnectTransport({ baseUrl: bounded.url, httpVersion: "1.1" }),
              ).fanout(
                { peers: [relayUrl], request: {} },
                { headers: depth === null ? {} : { "quartet-fanout-depth": depth } },
              );
              return {};
            },
          }),
      }),
    );
    relay.listen(0, "127.0.0.1");
    await once(relay, "listening");
    relayUrl = `http://127.0.0.1:${(relay.address() as { port: number }).port}`;
  });
  afterAll(() => relay?.close());

  it("stops at the second Fanout with FailedPrecondition, reported through the first", async () => {
    const err = await failure(
      clientOf(bounded).fanout({ peers: [relayUrl], request: {} }, { timeoutMs: 1000 }),
    );
    expect(err.code).toBe(Code.FailedPrecondition);
    expect(err.rawMessage).toMatch(
      new RegExp(`^peer ${relayUrl}: .*Fanout reached through 1 other Fanout`),
    );
  });
});
