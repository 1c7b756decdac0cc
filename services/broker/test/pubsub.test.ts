import { createGrpcWebTransport } from "@connectrpc/connect-node";
import type { ServiceProcess } from "@quartet/server/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BrokerClient } from "../src/client.ts";
import { client, startBroker, str, take, text } from "./brokers.ts";

let broker: ServiceProcess;
beforeAll(async () => {
  broker = await startBroker();
});
afterAll(async () => {
  await broker?.kill("SIGTERM");
});

const matches = (filter: string, subject: string) => {
  const f = filter.split(".");
  const s = subject.split(".");
  for (let i = 0; i < f.length; i++) {
    if (f[i] === ">") return s.length > i;
    if (i >= s.length || (f[i] !== "*" && f[i] !== s[i])) return false;
  }
  return f.length === s.length;
};

describe("pub/sub across processes", () => {
  it("3 subscribers on overlapping wildcards get exactly what they match, in publish order per publisher", async () => {
    const filters = ["orders.>", "orders.*.created", "orders.eu.*"];
    const subscribers = await Promise.all(
      filters.map((f, i) => client(broker.url, `sub-${i}`).subscribe(f)),
    );
    const subjects = [
      "orders.eu.created",
      "orders.us.created",
      "orders.eu.paid",
      "orders.us.paid",
      "audit.eu.created",
      "orders.eu",
    ];
    const publishers = ["p1", "p2"];
    const sent = publishers.map((p) =>
      Array.from({ length: 300 }, (_, i) => ({
        subject: subjects[(i * 7 + p.length) % subjects.length]!,
        body: `${p}:${i}`,
      })),
    );
    const expected = filters.map((f) => sent.flat().filter((m) => matches(f, m.subject)));
    const received = filters.map((_, i) => take(subscribers[i]!.messages, expected[i]!.length));
    // Two publishers at once: one message per Publish call, and in batches.
    await Promise.all([
      (async () => {
        const pub = client(broker.url, "p1");
        for (const m of sent[0]!) await pub.publish(m.subject, text(m.body));
      })(),
      (async () => {
        const pub = client(broker.url, "p2");
        for (let i = 0; i < sent[1]!.length; i += 50) {
          await pub.publishBatch(
            sent[1]!.slice(i, i + 50).map((m) => ({ subject: m.subject, payload: text(m.body) })),
          );
        }
      })(),
    ]);
    const got = await Promise.all(received);
    for (const [i, messages] of got.entries()) {
      const bodies = messages.map((m) => str(m.payload));
      for (const m of messages) expect(matches(filters[i]!, m.subject)).toBe(true);
      expect(new Set(bodies)).toEqual(new Set(expected[i]!.map((m) => m.body)));
      for (const p of publishers) {
        const mine = bodies.filter((b) => b.startsWith(`${p}:`));
        expect(mine, `${filters[i]} keeps ${p}'s order`).toEqual(
          expected[i]!.filter((m) => m.body.startsWith(`${p}:`)).map((m) => m.body),
        );
      }
      expect(subscribers[i]!.dropped()).toBe(0);
    }
    for (const s of subscribers) s.close();
  }, 30_000);

  it("3 members of a queue group each get a share and no message twice", async () => {
    const members = await Promise.all(
      [0, 1, 2].map((i) =>
        client(broker.url, `member-${i}`).subscribe("work.*", { queueGroup: "crew" }),
      ),
    );
    const watcher = await client(broker.url, "watcher").subscribe("work.>");
    const total = 300;
    const perMember = members.map(() => [] as string[]);
    const all = take(watcher.messages, total);
    // Each member's share is not known in advance: collect until the watcher has seen all.
    let markersSeen = 0;
    let allMarkers!: () => void;
    const markersDone = new Promise<void>((resolve) => (allMarkers = resolve));
    const collecting = members.map((m, i) =>
      (async () => {
        for await (const msg of m.messages) {
          const body = str(msg.payload);
          perMember[i]!.push(body);
          if (body.startsWith("end-") && ++markersSeen === members.length) allMarkers();
        }
      })(),
    );
    const pub = client(broker.url, "publisher");
    for (let i = 0; i < total; i += 100) {
      const delivered = await pub.publishBatch(
        Array.from({ length: 100 }, (_, j) => ({
          subject: "work.item",
          payload: text(String(i + j)),
        })),
      );
      expect(delivered).toBe(200);
    }
    await all;
    // A final marker per member proves each has read everything sent before it.
    for (let i = 0; i < members.length; i++) await pub.publish("work.item", text(`end-${i}`));
    await markersDone;
    for (const m of members) m.close();
    await Promise.all(collecting);
    const items = perMember.map((list) => list.filter((b) => !b.startsWith("end-")));
    for (const share of items) expect(share.length).toBeGreaterThan(0);
    const flat = items.flat();
    expect(flat).toHaveLength(total);
    expect(new Set(flat).size).toBe(total);
    watcher.close();
  }, 30_000);

  it("Subscribe and Publish work over gRPC-Web on HTTP/1.1, as from a browser", async () => {
    const web = new BrokerClient({
      baseUrl: broker.url,
      streaming: false,
      transport: createGrpcWebTransport({ baseUrl: broker.url, httpVersion: "1.1" }),
    });
    const sub = await web.subscribe("browser.*");
    await web.publish("browser.hello", text("hi"));
    await web.publish("browser.bye", text("bye"));
    const got = await take(sub.messages, 2);
    expect(got.map((m) => [m.subject, str(m.payload)])).toEqual([
      ["browser.hello", "hi"],
      ["browser.bye", "bye"],
    ]);
    sub.close();
  });
});
