import { startOtlpReceiver } from "@quartet/telemetry/testing";
import { afterEach, expect, it } from "vitest";
import { TestCluster } from "./support/cluster.ts";

let cluster: TestCluster | undefined;
afterEach(async () => {
  await cluster?.stop();
  cluster = undefined;
});

it("a Put sent to a follower shows as one trace: client, follower, leader", async () => {
  const receiver = await startOtlpReceiver();
  try {
    cluster = await TestCluster.start(3, [], {
      OTEL_SDK_DISABLED: "false",
      OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
      OTEL_BSP_SCHEDULE_DELAY: "50",
    });
    const c = cluster;
    // Find the leader (a forwarded write is answered by it), then call a follower.
    let leader = 0;
    while (leader === 0) {
      try {
        const r = await c
          .kv(1)
          .put({ key: new Uint8Array([1]), value: new Uint8Array() }, { timeoutMs: 2000 });
        leader = Number(r.header?.memberId);
      } catch {}
    }
    const follower = c.ids.find((id) => id !== leader)!;
    const traceId = "4bf92f3577b34da6a3ce929d0e0e4736";
    const res = await fetch(
      `http://127.0.0.1:${c.ports.get(follower)}/quartet.consensus.v1.KVService/Put`,
      {
        method: "POST",
        headers: {
          "content-type": "application/json",
          traceparent: `00-${traceId}-00f067aa0ba902b7-01`,
        },
        body: JSON.stringify({ key: "dHJhY2Vk", value: "eWVz" }),
      },
    );
    expect(res.status).toBe(200);
    const put = "quartet.consensus.v1.KVService/Put";
    const spans = await receiver.waitForSpans(
      (all) => all.filter((s) => s.traceId === traceId && s.name === put).length >= 3,
    );
    const inTrace = spans.filter((s) => s.traceId === traceId && s.name === put);
    const followerServer = inTrace.find(
      (s) => s.kind === "server" && s.parentSpanId === "00f067aa0ba902b7",
    )!;
    const forward = inTrace.find(
      (s) => s.kind === "client" && s.parentSpanId === followerServer.spanId,
    )!;
    const leaderServer = inTrace.find(
      (s) => s.kind === "server" && s.parentSpanId === forward.spanId,
    );
    expect(leaderServer).toMatchObject({ serviceName: "quartet-consensus" });
  } finally {
    await receiver.close();
  }
}, 60_000);
