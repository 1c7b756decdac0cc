import { describe, expect, it } from "vitest";
import {
  BrokerError,
  type BrokerMessage,
  BufferBudget,
  MESSAGE_OVERHEAD_BYTES,
  messageBytes,
  type OverflowEvent,
  PubSub,
  parseSubject,
} from "../src/index.ts";

const PAYLOAD = 1000;
const msg = (subject: string, n: number): BrokerMessage => ({
  subject,
  payload: new Uint8Array(PAYLOAD).fill(n),
  headers: {},
  replyTo: "",
});
const publish = (ps: PubSub, subject: string, n: number) =>
  ps.publish(msg(subject, n), parseSubject(subject, { wildcards: false }));
const SIZE = messageBytes(msg("t", 0));

describe("subscription buffers bounded in bytes", () => {
  it("counts payload, subjects, headers and a fixed overhead", () => {
    expect(
      messageBytes({
        subject: "a.b",
        payload: new Uint8Array(10),
        headers: { k: "vv" },
        replyTo: "r",
      }),
    ).toBe(MESSAGE_OVERHEAD_BYTES + 10 + 3 + 1 + 3);
  });

  it("drop-oldest keeps the newest messages that fit the byte limit and reports it", () => {
    const ps = new PubSub();
    const events: OverflowEvent[] = [];
    const s = ps.subscribe({
      subject: "t",
      bufferSize: 1000,
      overflow: "drop-oldest",
      byteLimit: { bytes: 3 * SIZE, description: "the 3-message byte limit" },
      onOverflow: (e) => events.push(e),
    });
    for (let i = 0; i < 5; i++) publish(ps, "t", i);
    expect(s.bytes).toBe(3 * SIZE);
    expect(s.dropped).toBe(2);
    expect(s.take(10).map((m) => m.payload[0])).toEqual([2, 3, 4]);
    expect(s.bytes).toBe(0);
    expect(events).toEqual([
      { limit: "the 3-message byte limit", dropped: 1 },
      { limit: "the 3-message byte limit", dropped: 1 },
    ]);
  });

  it("disconnect closes the subscription with resource_exhausted naming the byte limit", async () => {
    const ps = new PubSub();
    const s = ps.subscribe({
      subject: "t",
      bufferSize: 1000,
      overflow: "disconnect",
      byteLimit: { bytes: 2 * SIZE, description: "the broker's --max-subscription-buffer-bytes" },
    });
    for (let i = 0; i < 3; i++) publish(ps, "t", i);
    const err = await s.next(10).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BrokerError);
    expect((err as BrokerError).code).toBe("resource_exhausted");
    expect((err as Error).message).toMatch(/--max-subscription-buffer-bytes/);
    expect(ps.subscriptions).toBe(0);
  });

  it("a shared budget takes bytes back from its largest buffer, not from a reader keeping up", () => {
    const ps = new PubSub();
    const budget = new BufferBudget(10 * SIZE, "the process budget");
    const opts = { bufferSize: 1000, overflow: "drop-oldest", budgets: [budget] } as const;
    const slow = ps.subscribe({ subject: "t", ...opts });
    const fast = ps.subscribe({ subject: "t", ...opts });
    for (let i = 0; i < 100; i++) {
      publish(ps, "t", i);
      expect(fast.take(10).map((m) => m.payload[0])).toEqual([i]);
    }
    expect(fast.dropped).toBe(0);
    expect(slow.dropped).toBeGreaterThan(0);
    // The budget counts the slow buffer and the fast reader's last batch.
    expect(budget.used).toBe(slow.bytes + SIZE);
    expect(budget.used).toBeLessThanOrEqual(10 * SIZE);
    slow.close();
    fast.close();
    expect(budget.used).toBe(0);
    expect(budget.size).toBe(0);
  });

  it("a disconnect-policy buffer that a shared budget picks is closed, freeing its bytes", async () => {
    const ps = new PubSub();
    const budget = new BufferBudget(4 * SIZE, 'client "x"\'s --max-client-buffer-bytes');
    const hog = ps.subscribe({
      subject: "t",
      bufferSize: 1000,
      overflow: "disconnect",
      budgets: [budget],
    });
    for (let i = 0; i < 5; i++) publish(ps, "t", i);
    const err = (await hog.next(10).catch((e: unknown) => e)) as BrokerError;
    expect(err.code).toBe("resource_exhausted");
    expect(err.message).toMatch(/--max-client-buffer-bytes/);
    expect(budget.used).toBe(0);
  });

  it("a batch taken stays charged to the shared budgets until the reader takes the next", () => {
    const ps = new PubSub();
    const budget = new BufferBudget(100 * SIZE, "the process budget");
    const s = ps.subscribe({
      subject: "t",
      bufferSize: 100,
      overflow: "drop-oldest",
      budgets: [budget],
    });
    for (let i = 0; i < 3; i++) publish(ps, "t", i);
    s.take(2);
    expect([s.bytes, budget.used]).toEqual([SIZE, 3 * SIZE]);
    s.take(2);
    expect([s.bytes, budget.used]).toEqual([0, SIZE]);
    s.close();
    expect(budget.used).toBe(0);
  });

  it("take stops at maxBytes but always hands over one message", () => {
    const ps = new PubSub();
    const s = ps.subscribe({ subject: "t", bufferSize: 100, overflow: "drop-oldest" });
    for (let i = 0; i < 5; i++) publish(ps, "t", i);
    expect(s.take(100, 2 * SIZE + 1)).toHaveLength(2);
    expect(s.take(100, 1)).toHaveLength(1);
    expect(s.pending).toBe(2);
  });
});
