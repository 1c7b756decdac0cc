import type { ServiceProcess } from "@quartet/server/testing";
import { type OtlpReceiver, startOtlpReceiver } from "@quartet/telemetry/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startGateway, startWorker } from "./processes.ts";

let receiver: OtlpReceiver;
let worker: ServiceProcess;
let gateway: ServiceProcess;

beforeAll(async () => {
  receiver = await startOtlpReceiver();
  const env = { OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url, OTEL_BSP_SCHEDULE_DELAY: "50" };
  worker = await startWorker("traced", [], { env });
  gateway = await startGateway(["--route", `quartet.worker.v1.WorkerService=${worker.url}`], {
    env,
  });
}, 60_000);
afterAll(async () => {
  await gateway?.kill("SIGTERM");
  await worker?.kill("SIGTERM");
  await receiver?.close();
});

describe("tracing through the gateway", () => {
  it("one trace: caller -> gateway span -> worker's server span", async () => {
    const traceId = "4bf92f3577b34da6a3ce929d0e0e4736";
    const callerSpan = "00f067aa0ba902b7";
    for (const path of ["/quartet.worker.v1.WorkerService/Compute", "/v1/compute"]) {
      const res = await fetch(`${gateway.url}${path}`, {
        method: "POST",
        headers: {
          "content-type": "application/json",
          traceparent: `00-${traceId}-${callerSpan}-01`,
        },
        body: '{"input":"traced"}',
      });
      expect(res.status).toBe(200);
    }
    const spans = await receiver.waitForSpans(
      (all) =>
        all.filter(
          (s) => s.traceId === traceId && s.name.endsWith("/Compute") && s.kind === "server",
        ).length >= 2 &&
        all.filter((s) => s.traceId === traceId && s.name.startsWith("gateway ")).length >= 2,
    );
    const inTrace = spans.filter((s) => s.traceId === traceId);
    // One gateway span for the RPC call, one for the REST call; each is the worker's parent.
    const gatewaySpans = inTrace.filter((s) => s.name.startsWith("gateway "));
    expect(gatewaySpans.map((s) => s.parentSpanId)).toEqual([callerSpan, callerSpan]);
    const workerParents = inTrace
      .filter((s) => s.name === "quartet.worker.v1.WorkerService/Compute")
      .map((s) => s.parentSpanId)
      .sort();
    expect(workerParents).toEqual(gatewaySpans.map((s) => s.spanId).sort());
  });
});
