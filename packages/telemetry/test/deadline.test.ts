import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { WorkerService } from "@quartet/proto/quartet/worker/v1/worker_pb";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import {
  type CallContext,
  createTelemetryTransport,
  currentCall,
  withCallContext,
} from "../src/index.ts";
import { deferred, startWorkerServer, type TestServer } from "./servers.ts";

// No startTelemetry() here: deadline and cancellation propagation work without the SDK.

type Protocol = "connect" | "grpc" | "grpc-web";

/** What the downstream Compute handler saw. */
let seenTimeoutMs: (number | undefined)[] = [];
/** Set by a test to make the downstream Compute wait until its signal aborts. */
let hang: { started: () => void; aborted: (reason: unknown) => void } | undefined;
/** The upstream handler's view of its own call. */
let upstreamCall: CallContext | undefined;

let downstream: TestServer;
let upstream: TestServer;
/** Margin the upstream uses for its outbound calls; a test raises it to spend the budget. */
let marginMs = 5;
let downstreamProtocol: Protocol = "connect";

beforeAll(async () => {
  downstream = await startWorkerServer({
    async compute(_req, ctx) {
      seenTimeoutMs.push(ctx.timeoutMs());
      if (hang !== undefined) {
        hang.started();
        const reason = await new Promise((resolve) =>
          ctx.signal.addEventListener("abort", () => resolve(ctx.signal.reason)),
        );
        hang.aborted(reason);
        throw ConnectError.from(reason);
      }
      return { workerId: "downstream" };
    },
  });
  upstream = await startWorkerServer({
    // Asks for a generous 60 s per peer: the clamp must still win.
    async fanout(req) {
      upstreamCall = currentCall();
      const transport = telemetryTransport(req.peers[0]!, downstreamProtocol, marginMs);
      const response = await createClient(WorkerService, transport).compute(
        {},
        { timeoutMs: 60_000 },
      );
      return { results: [{ peer: req.peers[0]!, outcome: { case: "response", value: response } }] };
    },
  });
});

afterAll(async () => {
  await upstream.close();
  await downstream.close();
});

afterEach(() => {
  seenTimeoutMs = [];
  hang = undefined;
  upstreamCall = undefined;
  marginMs = 5;
  downstreamProtocol = "connect";
});

function telemetryTransport(baseUrl: string, protocol: Protocol, marginMs?: number) {
  return protocol === "grpc"
    ? createTelemetryTransport({ baseUrl, protocol, marginMs })
    : createTelemetryTransport({ baseUrl, httpVersion: "2", protocol, marginMs });
}

function upstreamClient(protocol: Protocol = "connect") {
  return createClient(WorkerService, telemetryTransport(upstream.url, protocol));
}

describe("deadline propagation", () => {
  for (const protocol of ["connect", "grpc", "grpc-web"] as const) {
    it(`gives the downstream call at most the handler's remaining time (${protocol})`, async () => {
      downstreamProtocol = protocol;
      await upstreamClient(protocol).fanout({ peers: [downstream.url] }, { timeoutMs: 3000 });
      expect(upstreamCall?.deadline).toBeTypeOf("number");
      expect(upstreamCall?.procedure).toBe("quartet.worker.v1.WorkerService/Fanout");
      const downstreamTimeout = seenTimeoutMs[0];
      expect(downstreamTimeout).toBeTypeOf("number");
      expect(downstreamTimeout).toBeGreaterThan(0);
      // 3000 ms upstream, minus the 5 ms margin, minus whatever has elapsed.
      expect(downstreamTimeout).toBeLessThanOrEqual(2995);
    });
  }

  it("leaves the requested timeout alone when the handler has no deadline", async () => {
    await upstreamClient().fanout({ peers: [downstream.url] });
    expect(upstreamCall?.deadline).toBeUndefined();
    expect(seenTimeoutMs[0]).toBeGreaterThan(2995);
    expect(seenTimeoutMs[0]).toBeLessThanOrEqual(60_000);
  });

  it("fails fast with DeadlineExceeded and never sends a call whose budget is spent", async () => {
    marginMs = 10_000; // more than the 3 s the caller gives: nothing is left to spend
    const before = downstream.requests();
    const call = upstreamClient().fanout({ peers: [downstream.url] }, { timeoutMs: 3000 });
    const error = await call.then(
      () => undefined,
      (e: unknown) => ConnectError.from(e),
    );
    expect(error?.code).toBe(Code.DeadlineExceeded);
    expect(error?.rawMessage).toContain("quartet.worker.v1.WorkerService/Compute not sent");
    expect(downstream.requests()).toBe(before);
    expect(seenTimeoutMs).toEqual([]);
  });

  it("passes calls made outside any handler through unchanged", async () => {
    const transport = withCallContext(
      createConnectTransport({ baseUrl: downstream.url, httpVersion: "2" }),
      { marginMs: 10_000 },
    );
    expect(currentCall()).toBeUndefined();
    await createClient(WorkerService, transport).compute({}, { timeoutMs: 4000 });
    expect(seenTimeoutMs[0]).toBeGreaterThan(3000);
  });
});

describe("cancellation cascade", () => {
  function hangDownstream() {
    const started = deferred();
    const aborted = deferred<unknown>();
    hang = { started: () => started.resolve(), aborted: aborted.resolve };
    return { started: started.promise, aborted: aborted.promise };
  }

  it("aborts the downstream handler when the upstream caller cancels", async () => {
    const { started, aborted } = hangDownstream();
    const controller = new AbortController();
    const call = upstreamClient().fanout(
      { peers: [downstream.url] },
      { signal: controller.signal },
    );
    const outcome = call.then(
      () => undefined,
      (e: unknown) => ConnectError.from(e),
    );
    await started;
    controller.abort();
    const reason = ConnectError.from(await aborted);
    expect(reason.code).toBe(Code.Canceled);
    expect((await outcome)?.code).toBe(Code.Canceled);
  });

  it("aborts the downstream handler when the upstream deadline passes", async () => {
    const { started, aborted } = hangDownstream();
    const outcome = upstreamClient()
      .fanout({ peers: [downstream.url] }, { timeoutMs: 300 })
      .then(
        () => undefined,
        (e: unknown) => ConnectError.from(e),
      );
    await started;
    // Resolves only once the downstream handler's signal has aborted. Its reason depends
    // on which fires first: the downstream's own clamped deadline (deadline_exceeded) or
    // the upstream client's, which connect-node sends as RST_STREAM INTERNAL_ERROR.
    expect(await aborted).toBeDefined();
    expect((await outcome)?.code).toBe(Code.DeadlineExceeded);
    expect(seenTimeoutMs[0]).toBeLessThanOrEqual(295);
  });
});
