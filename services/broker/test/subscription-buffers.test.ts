import { PubSub, parseSubject } from "@quartet/broker";
import type { Logger } from "@quartet/server";
import { describe, expect, it } from "vitest";
import { defaultBrokerLimits } from "../src/limits.ts";
import { SubscriptionBuffers } from "../src/subscription-buffers.ts";

function recordingLogger() {
  const lines: { fields: Record<string, unknown>; msg: string }[] = [];
  const logger = {
    warn: (fields: Record<string, unknown>, msg: string) => lines.push({ fields, msg }),
  } as unknown as Logger;
  return { lines, logger };
}

const payload = new Uint8Array(100);
const send = (ps: PubSub, n: number) => {
  for (let i = 0; i < n; i++) {
    ps.publish(
      { subject: "t", payload, headers: {}, replyTo: "" },
      parseSubject("t", { wildcards: false }),
    );
  }
};

describe("SubscriptionBuffers", () => {
  it("logs the first drop at once, then at most one line per interval with the count since", () => {
    const { lines, logger } = recordingLogger();
    let now = 0;
    const buffers = new SubscriptionBuffers(
      { ...defaultBrokerLimits, slowConsumerLogIntervalMs: 1000 },
      logger,
      () => now,
    );
    const ps = new PubSub();
    const buffer = buffers.open("c1", { subject: "t" });
    const sub = ps.subscribe({
      subject: "t",
      bufferSize: 10,
      overflow: "drop-oldest",
      ...buffer.options,
    });
    send(ps, 11);
    expect(lines.map((l) => l.fields.dropped)).toEqual([1]);
    send(ps, 500);
    now = 999;
    send(ps, 1);
    expect(lines).toHaveLength(1);
    now = 1000;
    send(ps, 1);
    expect(lines.map((l) => l.fields.dropped)).toEqual([1, 502]);
    send(ps, 7);
    sub.close();
    buffer.end();
    expect(lines.map((l) => [l.fields.dropped, l.fields.droppedTotal])).toEqual([
      [1, 1],
      [502, 503],
      [7, 510],
    ]);
    expect(lines[0]).toMatchObject({
      fields: {
        client: "c1",
        subject: "t",
        policy: "drop-oldest",
        limit: "its buffer_size of 10 messages",
      },
      msg: "slow consumer: dropped 1 oldest messages, its buffer_size of 10 messages reached",
    });
  });

  it("forgets a client's budget with its last subscription", () => {
    const buffers = new SubscriptionBuffers(defaultBrokerLimits, recordingLogger().logger);
    const a = buffers.open("rotating-1", {});
    const b = buffers.open("rotating-1", {});
    expect(buffers.clientCount).toBe(1);
    a.end();
    a.end();
    expect(buffers.clientCount).toBe(1);
    b.end();
    expect(buffers.clientCount).toBe(0);
  });
});
