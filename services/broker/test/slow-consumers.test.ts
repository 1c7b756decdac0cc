import { readFileSync } from "node:fs";
import { type ClientHttp2Session, type ClientHttp2Stream, connect } from "node:http2";
import { Code, ConnectError } from "@connectrpc/connect";
import type { ServiceProcess } from "@quartet/server/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { client, startBroker, TOKEN, take, text } from "./brokers.ts";

const MiB = 1024 * 1024;
const PAYLOAD = new Uint8Array(64 * 1024).fill(7);
/** What the four never-reading subscribers are sent: unbounded, the broker would keep all of it. */
const ATTACK_BYTES = 768 * MiB;
/** The stated bound: the broker's RSS grows by less than this during the attack. */
const RSS_GROWTH_BOUND = 256 * MiB;

let broker: ServiceProcess;

beforeAll(async () => {
  broker = await startBroker([
    "--max-subscription-buffer-bytes",
    String(8 * MiB),
    "--max-client-buffer-bytes",
    String(16 * MiB),
    "--max-buffer-bytes",
    String(24 * MiB),
    // One line per subscription for the whole test: the drops are not logged one by one.
    "--slow-consumer-log-interval-ms",
    "3600000",
  ]);
}, 30_000);

afterAll(async () => {
  await broker?.kill("SIGTERM");
});

/** The broker's resident set size, from /proc. */
function rssBytes(pid: number): number {
  const line = readFileSync(`/proc/${pid}/status`, "utf8")
    .split("\n")
    .find((l) => l.startsWith("VmRSS:"))!;
  return Number(line.split(/\s+/)[1]) * 1024;
}

function envelope(json: unknown): Buffer {
  const body = Buffer.from(JSON.stringify(json));
  const head = Buffer.alloc(5);
  head.writeUInt32BE(body.length, 1);
  return Buffer.concat([head, body]);
}

/**
 * A Subscribe stream (Connect JSON over HTTP/2) whose reader stops after the `ready` message:
 * the stream is paused, so HTTP/2 flow control stops the broker from sending more.
 */
async function neverReadingSubscriber(
  url: string,
  clientId: string,
  subject: string,
  overflow: "OVERFLOW_DROP_OLDEST" | "OVERFLOW_DISCONNECT" = "OVERFLOW_DROP_OLDEST",
): Promise<{
  session: ClientHttp2Session;
  stream: ClientHttp2Stream;
  readRest(): Promise<unknown>;
}> {
  const session = connect(url);
  const stream = session.request({
    ":method": "POST",
    ":path": "/quartet.broker.v1.BrokerService/Subscribe",
    "content-type": "application/connect+json",
    "quartet-client-id": clientId,
    // As an admin: its labels have budgets of their own (anonymous clients share one).
    authorization: `Bearer ${TOKEN}`,
  });
  stream.end(envelope({ subject, bufferSize: 65_536, overflow }));
  let received = Buffer.alloc(0);
  await new Promise<void>((resolve, reject) => {
    const onData = (chunk: Buffer) => {
      received = Buffer.concat([received, chunk]);
      if (received.toString().includes('"ready":true')) {
        stream.off("data", onData);
        stream.pause();
        resolve();
      }
    };
    stream.on("data", onData);
    stream.once("error", reject);
  });
  return {
    session,
    stream,
    /** Resumes reading to the end; returns the end-of-stream message's `error`. */
    async readRest() {
      stream.resume();
      const chunks: Buffer[] = [received];
      for await (const chunk of stream) chunks.push(chunk as Buffer);
      const all = Buffer.concat(chunks);
      let at = 0;
      let last: { error?: unknown } = {};
      while (at + 5 <= all.length) {
        const length = all.readUInt32BE(at + 1);
        if (all[at]! & 0b10) last = JSON.parse(all.subarray(at + 5, at + 5 + length).toString());
        at += 5 + length;
      }
      return last.error;
    },
  };
}

describe("subscribers that never read cannot make the broker hold unbounded memory", () => {
  it("RSS stays bounded while a publisher floods four never-reading subscribers, and a normal subscriber still gets its messages", async () => {
    const attackers = await Promise.all(
      [1, 2, 3, 4].map((i) => neverReadingSubscriber(broker.url, `attacker-${i}`, "attack.>")),
    );
    const publisher = client(broker.url, "publisher");
    const batch = Array.from({ length: 16 }, () => ({ subject: "attack.flood", payload: PAYLOAD }));
    // Warm up (connections, JIT, buffers filling to their limits) before the baseline.
    for (let sent = 0; sent < 64 * MiB; sent += 16 * PAYLOAD.length) {
      await publisher.publishBatch(batch);
    }
    const baseline = rssBytes(broker.pid);
    let peak = baseline;
    let normalReceived: string | undefined;
    for (let sent = 0; sent < ATTACK_BYTES; sent += 16 * PAYLOAD.length) {
      expect(await publisher.publishBatch(batch)).toBe(16 * 4);
      peak = Math.max(peak, rssBytes(broker.pid));
      if (normalReceived === undefined && sent >= ATTACK_BYTES / 2) {
        // Halfway through the attack: an ordinary subscribe and publish work as usual.
        const normal = client(broker.url, "normal");
        const sub = await normal.subscribe("normal.greeting");
        expect(await normal.publish("normal.greeting", text("hello"))).toBe(1);
        const [got] = await take(sub.messages, 1);
        normalReceived = new TextDecoder().decode(got!.payload);
        expect(sub.dropped()).toBe(0);
        sub.close();
      }
    }
    expect(normalReceived).toBe("hello");
    expect(peak - baseline).toBeLessThan(RSS_GROWTH_BOUND);
    // The policy acted on every attacker and was logged once for each, not once per drop.
    const lines = broker.lines
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .filter((l) => String(l.msg).startsWith("slow consumer: dropped"));
    for (const i of [1, 2, 3, 4]) {
      const mine = lines.filter((l) => l.client === `attacker-${i}`);
      expect(mine).toHaveLength(1);
      expect(mine[0]).toMatchObject({ policy: "drop-oldest", subject: "attack.>" });
      expect(String(mine[0]!.limit)).toMatch(/--max-(subscription|client)?-?buffer-bytes/);
    }
    for (const a of attackers) a.session.destroy();
  }, 180_000);

  it("a never-reading OVERFLOW_DISCONNECT subscriber is ended with ResourceExhausted naming the byte limit", async () => {
    const slow = await neverReadingSubscriber(
      broker.url,
      "disconnect-me",
      "cut.>",
      "OVERFLOW_DISCONNECT",
    );
    const publisher = client(broker.url, "cut-publisher");
    const batch = Array.from({ length: 16 }, () => ({ subject: "cut.flood", payload: PAYLOAD }));
    // Until the broker has cut it off and removed the subscription.
    while ((await publisher.publishBatch(batch)) > 0) {}
    const error = (await slow.readRest()) as { code: string; message: string };
    expect(error.code).toBe("resource_exhausted");
    expect(error.message).toMatch(
      /^slow consumer: the buffer for "cut\.>" \(\d+ messages, \d+ bytes\) reached the broker's limit of 8388608 bytes per subscription \(--max-subscription-buffer-bytes\)/,
    );
    await broker.waitForLog(
      (l) =>
        l.client === "disconnect-me" &&
        l.policy === "disconnect" &&
        String(l.msg).startsWith("slow consumer"),
    );
    slow.session.close();
  }, 60_000);

  it("a Node client reading a disconnected subscription gets the error as a ConnectError", async () => {
    const c = client(broker.url, "node-slow");
    const sub = await c.subscribe("node.>", { overflow: "disconnect", bufferSize: 65_536 });
    const batch = Array.from({ length: 16 }, () => ({ subject: "node.flood", payload: PAYLOAD }));
    while ((await c.publishBatch(batch)) > 0) {}
    const err = await (async () => {
      try {
        for await (const _ of sub.messages) {
          // what was sent before the disconnect
        }
      } catch (e) {
        return ConnectError.from(e);
      }
      return undefined;
    })();
    expect(err?.code).toBe(Code.ResourceExhausted);
    expect(err?.rawMessage).toMatch(/--max-subscription-buffer-bytes/);
  }, 60_000);
});
