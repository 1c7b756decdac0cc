import { describe, expect, it } from "vitest";
import { PubSub, parseSubject } from "../src/index.ts";

describe("queue-group bookkeeping (issue 17)", () => {
  it("forgets a queue group with its last member, so rotating group names does not grow the broker", () => {
    const ps = new PubSub();
    for (let i = 0; i < 1000; i++) {
      const members = [0, 1].map(() =>
        ps.subscribe({
          subject: "jobs.*",
          queueGroup: `rotating-${i}`,
          bufferSize: 10,
          overflow: "drop-oldest",
        }),
      );
      ps.publish(
        { subject: "jobs.x", payload: new Uint8Array(), headers: {}, replyTo: "" },
        parseSubject("jobs.x", { wildcards: false }),
      );
      for (const m of members) m.close();
    }
    expect(ps.queueGroups).toBe(0);
  });

  it("keeps a group's turn while it still has members", () => {
    const ps = new PubSub();
    const opts = {
      subject: "t",
      queueGroup: "g",
      bufferSize: 10,
      overflow: "drop-oldest",
    } as const;
    const [a, b, c] = [ps.subscribe(opts), ps.subscribe(opts), ps.subscribe(opts)];
    const tokens = parseSubject("t", { wildcards: false });
    const send = () =>
      ps.publish({ subject: "t", payload: new Uint8Array(), headers: {}, replyTo: "" }, tokens);
    send();
    c!.close();
    expect(ps.queueGroups).toBe(1);
    send();
    send();
    // The turn counter carried on (turns 1 and 2 over the two remaining members).
    expect([a!.pending, b!.pending]).toEqual([2, 1]);
  });
});

describe("parseSubject's cached tokens (issue 17)", () => {
  it("cannot be corrupted by a caller that writes to the array it got", () => {
    const first = parseSubject("orders.eu.created", { wildcards: false });
    try {
      (first as string[])[1] = "us";
      (first as string[]).push("extra");
    } catch {
      // A frozen array refuses the write in strict mode: that is the point.
    }
    expect(parseSubject("orders.eu.created", { wildcards: false })).toEqual([
      "orders",
      "eu",
      "created",
    ]);
  });
});
