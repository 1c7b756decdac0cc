import { describe, expect, it } from "vitest";
import { BrokerError, type BrokerMessage, PubSub, parseSubject } from "../src/index.ts";

const msg = (subject: string, n: number): BrokerMessage => ({
  subject,
  payload: new Uint8Array([n]),
  headers: {},
  replyTo: "",
});
const publish = (ps: PubSub, subject: string, n: number) =>
  ps.publish(msg(subject, n), parseSubject(subject, { wildcards: false }));
const sub = (
  ps: PubSub,
  subject: string,
  extra: { queueGroup?: string; bufferSize?: number; overflow?: "drop-oldest" | "disconnect" } = {},
) => ps.subscribe({ subject, bufferSize: 100, overflow: "drop-oldest", ...extra });

describe("PubSub", () => {
  it("fans out to every matching subscriber in publish order", () => {
    const ps = new PubSub();
    const all = sub(ps, "orders.>");
    const eu = sub(ps, "orders.eu.*");
    const created = sub(ps, "orders.*.created");
    const subjects = ["orders.eu.created", "orders.us.created", "orders.eu.paid", "audit.log"];
    for (const [i, s] of subjects.entries()) publish(ps, s, i);
    const seen = (s: ReturnType<typeof sub>) => s.take(100).map((m) => m.payload[0]);
    expect(seen(all)).toEqual([0, 1, 2]);
    expect(seen(eu)).toEqual([0, 2]);
    expect(seen(created)).toEqual([0, 1]);
  });

  it("gives each queue-group message to one member, in turn", () => {
    const ps = new PubSub();
    const members = [0, 1, 2].map(() => sub(ps, "jobs.*", { queueGroup: "g" }));
    const plain = sub(ps, "jobs.*");
    for (let i = 0; i < 30; i++) expect(publish(ps, "jobs.x", i)).toBe(2);
    const got = members.map((m) => m.take(100).map((x) => x.payload[0]!));
    expect(got.map((g) => g.length)).toEqual([10, 10, 10]);
    expect(new Set(got.flat()).size).toBe(30);
    expect(plain.pending).toBe(30);
  });

  it("drop-oldest keeps the newest messages and counts the dropped", () => {
    const ps = new PubSub();
    const s = sub(ps, "t", { bufferSize: 3 });
    for (let i = 0; i < 5; i++) publish(ps, "t", i);
    expect(s.dropped).toBe(2);
    expect(s.take(10).map((m) => m.payload[0])).toEqual([2, 3, 4]);
  });

  it("disconnect ends a slow subscriber with resource_exhausted and removes it", async () => {
    const ps = new PubSub();
    const s = sub(ps, "t", { bufferSize: 2, overflow: "disconnect" });
    publish(ps, "t", 0);
    publish(ps, "t", 1);
    expect(publish(ps, "t", 2)).toBe(1);
    const err = await s.next(10).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BrokerError);
    expect((err as BrokerError).code).toBe("resource_exhausted");
    expect((err as Error).message).toMatch(/slow consumer/);
    expect(ps.subscriptions).toBe(0);
    expect(publish(ps, "t", 3)).toBe(0);
  });

  it("request gets the reply published to its inbox", async () => {
    const ps = new PubSub();
    const responder = sub(ps, "svc.echo");
    const reply = ps.request(msg("svc.echo", 7), ["svc", "echo"], new AbortController().signal);
    const [req] = (await responder.next(1))!;
    expect(req!.replyTo).toMatch(/^_INBOX\./);
    publish(ps, req!.replyTo, 8);
    expect((await reply).payload[0]).toBe(8);
  });

  it("request fails with unavailable when nobody listens and deadline_exceeded on abort", async () => {
    const ps = new PubSub();
    const none = await ps
      .request(msg("svc.none", 1), ["svc", "none"], new AbortController().signal)
      .catch((e) => e);
    expect(none.code).toBe("unavailable");
    expect(none.message).toMatch(/no responders/);
    sub(ps, "svc.slow");
    const abort = new AbortController();
    const pending = ps.request(msg("svc.slow", 1), ["svc", "slow"], abort.signal).catch((e) => e);
    abort.abort();
    expect((await pending).code).toBe("deadline_exceeded");
  });
});
