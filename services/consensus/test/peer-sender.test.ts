import type { Message } from "@quartet/raft";
import { describe, expect, it } from "vitest";
import { type OpenStream, PeerSender } from "../src/transport/peer-sender.ts";

const heartbeat = (n: number): Message => ({
  type: "heartbeat",
  from: 1,
  to: 2,
  term: n,
  commit: 0,
  context: "",
  sentAt: n,
});

/** A stream whose reader the test drives: `pull()` takes the next batch written. */
function manualStream() {
  const written: Message[][] = [];
  let iterator: AsyncIterator<Message[]> | undefined;
  let opened = 0;
  const open: OpenStream = (batches) => {
    opened++;
    iterator = batches[Symbol.asyncIterator]();
    return new Promise(() => {});
  };
  return {
    open,
    written,
    opens: () => opened,
    async pull() {
      const r = await iterator!.next();
      if (!r.done) written.push(r.value);
      return r.value as Message[];
    },
  };
}

describe("PeerSender", () => {
  it("sends what queued up while the stream was busy as one batch, in order", async () => {
    const stream = manualStream();
    const sender = new PeerSender({ peer: 2, open: stream.open, unreachable: () => {} });
    sender.send(heartbeat(1));
    expect((await stream.pull()).map((m) => m.term)).toEqual([1]);
    for (const n of [2, 3, 4]) sender.send(heartbeat(n));
    expect((await stream.pull()).map((m) => m.term)).toEqual([2, 3, 4]);
    expect(sender.stats).toMatchObject({ sent: 4, dropped: 0 });
    sender.close();
  });

  it("drops past its bound and tells the core the peer is unreachable, instead of growing", async () => {
    const stream = manualStream();
    const unreachable: number[] = [];
    const entries = [{ term: 1, index: 2, type: "normal" as const, data: new Uint8Array(600) }];
    const append = (i: number): Message => ({
      type: "app",
      from: 1,
      to: 2,
      term: 1,
      index: i,
      logTerm: 1,
      entries,
      commit: 0,
    });
    const sender = new PeerSender({
      peer: 2,
      open: stream.open,
      unreachable: (p) => unreachable.push(p),
      maxQueuedMessages: 100,
      maxQueuedBytes: 1000,
    });
    sender.send(append(1));
    sender.send(append(2)); // 1,200 bytes queued would pass 1,000
    for (let i = 0; i < 150; i++) sender.send(heartbeat(i)); // 101 messages would pass 100
    expect(sender.stats.dropped).toBe(1 + 51);
    expect(unreachable.length).toBe(52);
    expect((await stream.pull()).length).toBe(100);
    sender.close();
  });

  it("reopens a broken stream with backoff and sends what queued meanwhile", async () => {
    let opens = 0;
    const got: number[] = [];
    const unreachable: number[] = [];
    let done!: () => void;
    const finished = new Promise<void>((r) => {
      done = r;
    });
    const open: OpenStream = async (batches) => {
      opens++;
      if (opens === 1) throw new Error("connection refused");
      for await (const batch of batches) {
        got.push(...batch.map((m) => m.term));
        if (got.length === 3) done();
      }
    };
    const sender = new PeerSender({
      peer: 2,
      open,
      unreachable: (p) => unreachable.push(p),
      backoff: () => 0,
    });
    for (const n of [1, 2, 3]) sender.send(heartbeat(n));
    await finished;
    expect(got).toEqual([1, 2, 3]);
    expect(opens).toBe(2);
    expect(unreachable).toEqual([2]);
    sender.close();
  });
});
