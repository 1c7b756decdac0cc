// The RawNode contract: what a Ready holds together, and how requests are refused.
import { describe, expect, it } from "vitest";
import { MemoryStorage, type Message, RawNode, type Ready } from "../src/index.ts";

function node(id: number, voters = [1, 2, 3], opts = {}) {
  const storage = MemoryStorage.bootstrap({ voters });
  return { storage, raw: new RawNode({ id, storage, ...opts }) };
}

function persist(storage: MemoryStorage, rd: Ready) {
  if (rd.snapshot) storage.applySnapshot(rd.snapshot);
  storage.append(rd.entries);
  if (rd.hardState) storage.setHardState(rd.hardState);
}

/**
 * Node 1 elected leader of 1-3 in term 2 with `opts`, every Ready it made persisted; `sent`
 * collects the messages of the Readies `drain` handles from then on.
 */
function electedLeader(opts: object) {
  const n = node(1, [1, 2, 3], opts);
  const sent: Message[] = [];
  const drain = () => {
    while (n.raw.hasReady()) {
      const rd = n.raw.ready();
      persist(n.storage, rd);
      sent.push(...rd.earlyMessages, ...rd.messages);
      n.raw.advance();
    }
  };
  n.raw.campaign();
  drain();
  n.raw.step({ type: "preVoteResp", from: 2, to: 1, term: 2, reject: false });
  drain();
  n.raw.step({ type: "voteResp", from: 2, to: 1, term: 2, reject: false });
  drain();
  expect(n.raw.raft.state).toBe("leader");
  sent.length = 0;
  return { ...n, sent, drain };
}

/** `from`'s acknowledgement of the leader's log up to `index`, in term 2. */
const ack = (from: number, index: number): Message => ({
  type: "appResp",
  from,
  to: 1,
  term: 2,
  index,
  reject: false,
  rejectHint: 0,
  logTerm: 0,
});

describe("RawNode", () => {
  it("puts a granted vote in the same Ready as the hard state recording it", () => {
    const { raw } = node(2);
    raw.step({ type: "vote", from: 1, to: 2, term: 2, index: 1, logTerm: 1, transfer: false });
    const rd = raw.ready();
    expect(rd.hardState).toMatchObject({ term: 2, vote: 1 });
    expect(rd.mustSync).toBe(true);
    expect(rd.messages).toEqual([{ type: "voteResp", from: 2, to: 1, term: 2, reject: false }]);
  });

  it("acknowledges appended entries only in the Ready that persists them", () => {
    const { raw } = node(2);
    const entries = [{ term: 2, index: 2, type: "normal" as const, data: new Uint8Array([1]) }];
    raw.step({ type: "app", from: 1, to: 2, term: 2, index: 1, logTerm: 1, entries, commit: 1 });
    const rd = raw.ready();
    expect(rd.entries).toEqual(entries);
    expect(rd.messages).toMatchObject([{ type: "appResp", index: 2, reject: false }]);
  });

  it("requires advance() between Readies, and proposals in between go to the next one", () => {
    const { raw, storage } = node(1, [1]);
    raw.campaign();
    const rd1 = raw.ready();
    expect(() => raw.ready()).toThrow(/advance/);
    expect(raw.hasReady()).toBe(false);
    const p = raw.propose(new Uint8Array([9]));
    expect(p).toMatchObject({ ok: true, index: 3 });
    persist(storage, rd1);
    raw.advance();
    const rd2 = raw.ready();
    expect(rd2.entries.map((e) => e.index)).toEqual([3]);
    expect(() => {
      raw.advance();
      raw.advance();
    }).toThrow(/no Ready/);
  });

  it("hands committed entries out once, after they are persisted", () => {
    const { raw, storage } = node(1, [1]);
    raw.campaign();
    const seen: number[] = [];
    for (let i = 0; i < 5 && raw.hasReady(); i++) {
      const rd = raw.ready();
      persist(storage, rd);
      for (const e of rd.committedEntries) seen.push(e.index);
      raw.advance();
    }
    expect(seen).toEqual([2]);
    expect(raw.status()).toMatchObject({ state: "leader", commit: 2, applied: 2 });
  });

  it("refuses requests it cannot serve, naming the leader when it knows one", () => {
    const { raw } = node(2);
    expect(raw.propose(new Uint8Array())).toMatchObject({ ok: false, reason: "no-leader" });
    expect(raw.readIndex("r")).toMatchObject({ ok: false, reason: "no-leader" });
    raw.step({ type: "heartbeat", from: 3, to: 2, term: 5, commit: 1, context: "", sentAt: 0 });
    const res = raw.propose(new Uint8Array());
    expect(res).toMatchObject({ ok: false, reason: "not-leader", leaderId: 3 });
    expect(res.ok ? "" : res.message).toMatch(/try 3/);
    // A follower forwards reads to the leader.
    expect(raw.readIndex("r2")).toEqual({ ok: true });
    const msgs: Message[] = raw.ready().messages;
    expect(msgs.find((m) => m.type === "readIndex")).toMatchObject({ to: 3, context: "r2" });
  });

  it("rejects invalid configuration", () => {
    const storage = new MemoryStorage();
    expect(() => new RawNode({ id: 0, storage })).toThrow(/invalid node id/);
    expect(() => new RawNode({ id: 1, storage, electionTick: 2, heartbeatTick: 2 })).toThrow(
      /electionTick/,
    );
    expect(
      () => new RawNode({ id: 1, storage, checkQuorum: false, readOnlyOption: "leaseBased" }),
    ).toThrow(/requires checkQuorum/);
  });

  it("ignores messages from older terms and for other nodes", () => {
    const { raw } = node(2);
    raw.step({ type: "heartbeat", from: 1, to: 3, term: 9, commit: 1, context: "", sentAt: 0 });
    expect(raw.status().term).toBe(1);
  });

  it("refuses proposals past maxUncommittedBytes until earlier ones are applied", () => {
    const { raw, storage } = node(1, [1, 2, 3], { preVote: false, maxUncommittedBytes: 100 });
    const apply = () => {
      const rd = raw.ready();
      persist(storage, rd);
      raw.advance();
      return rd.committedEntries.map((e) => e.index);
    };
    raw.campaign();
    raw.step({ type: "voteResp", from: 2, to: 1, term: 2, reject: false });
    expect(raw.status()).toMatchObject({ state: "leader" });
    // The leader's empty entry of its term does not count; neither does a lone big proposal.
    expect(raw.propose(new Uint8Array(150))).toMatchObject({ ok: true, index: 3 });
    const refused = raw.propose(new Uint8Array(1));
    expect(refused).toMatchObject({ ok: false, reason: "uncommitted-limit", leaderId: 1 });
    expect(refused.ok ? "" : refused.message).toMatch(/150 bytes not yet applied/);
    apply();
    // A follower stores index 3: once applied, its bytes no longer count.
    const ack = { type: "appResp", from: 2, to: 1, term: 2, rejectHint: 0, logTerm: 0 } as const;
    raw.step({ ...ack, index: 3, reject: false });
    expect(raw.propose(new Uint8Array(1))).toMatchObject({
      ok: false,
      reason: "uncommitted-limit",
    });
    expect(apply()).toEqual([2, 3]);
    expect(raw.propose(new Uint8Array(60))).toMatchObject({ ok: true, index: 4 });
    expect(raw.propose(new Uint8Array(40))).toMatchObject({ ok: true, index: 5 });
    expect(raw.propose(new Uint8Array(1))).toMatchObject({
      ok: false,
      reason: "uncommitted-limit",
    });
    // Applying the first of the two frees exactly its 60 bytes.
    apply();
    raw.step({ ...ack, index: 4, reject: false });
    expect(apply()).toEqual([4]);
    expect(raw.propose(new Uint8Array(61))).toMatchObject({
      ok: false,
      reason: "uncommitted-limit",
    });
    expect(raw.propose(new Uint8Array(60))).toMatchObject({ ok: true, index: 6 });
  });

  it("rejects a maxUncommittedBytes that is not a whole number of bytes", () => {
    expect(() => node(1, [1], { maxUncommittedBytes: -1 })).toThrow(/maxUncommittedBytes/);
    expect(() => node(1, [1], { maxUncommittedBytes: 1.5 })).toThrow(/maxUncommittedBytes/);
  });
  describe("lazyCommit", () => {
    const toNode2 = (sent: Message[]) =>
      sent.flatMap((m) => (m.type === "app" && m.to === 2 ? [[m.entries.length, m.commit]] : []));

    it("sends an append that carries only a new commit index at once by default", () => {
      const { raw, sent, drain } = electedLeader({});
      raw.step(ack(2, 2)); // the leader's empty entry of term 2 commits
      drain();
      expect(raw.raft.log.committed).toBe(2);
      expect(toNode2(sent)).toEqual([[0, 2]]);
      expect(raw.owesCommit()).toBe(false);
    });

    it("holds it back until bumpCommit() or the next append, which carries the index", () => {
      const { raw, sent, drain } = electedLeader({ lazyCommit: true });
      raw.step(ack(2, 2));
      drain();
      expect(raw.raft.log.committed).toBe(2);
      expect(toNode2(sent)).toEqual([]);
      expect(raw.owesCommit()).toBe(true);
      raw.bumpCommit();
      drain();
      expect(toNode2(sent)).toEqual([[0, 2]]);
      expect(raw.owesCommit()).toBe(false);
      raw.bumpCommit(); // nothing owed: nothing sent
      drain();
      expect(toNode2(sent)).toHaveLength(1);

      // An entry committed, then a proposal: its append carries the index, nothing else goes.
      raw.propose(new Uint8Array([7]));
      drain();
      raw.step(ack(2, 3));
      drain();
      expect(raw.raft.log.committed).toBe(3);
      expect(raw.owesCommit()).toBe(true);
      sent.length = 0;
      raw.propose(new Uint8Array([8]));
      drain();
      expect(toNode2(sent)).toEqual([[1, 3]]);
      expect(raw.owesCommit()).toBe(false);
    });

    it("owes nothing to a follower with appends in flight: its answer brings the next one", () => {
      const { raw, sent, drain } = electedLeader({ lazyCommit: true });
      raw.step(ack(2, 2));
      raw.bumpCommit();
      drain();
      raw.propose(new Uint8Array([7]));
      drain(); // entry 3 is in flight to node 2
      raw.step(ack(3, 3)); // node 3 acknowledges everything: 3 commits
      drain();
      expect(raw.raft.log.committed).toBe(3);
      // Node 3 is owed the index; node 2 lags too (it was sent commit 2), but it has entry 3
      // in flight, so it is not: bumpCommit sends to node 3 only, and then nothing is owed.
      sent.length = 0;
      raw.bumpCommit();
      drain();
      expect(sent.map((m) => m.type === "app" && [m.to, m.entries.length, m.commit])).toEqual([
        [3, 0, 3],
      ]);
      expect(raw.owesCommit()).toBe(false);
      // Node 2's acknowledgement empties its window: now it is owed the index.
      raw.step(ack(2, 3));
      drain();
      expect(raw.owesCommit()).toBe(true);
      raw.bumpCommit();
      drain();
      expect(toNode2(sent)).toEqual([[0, 3]]);
    });
  });

  describe("sendBeforePersist (Raft thesis 10.2.1)", () => {
    const leader = () => electedLeader({ sendBeforePersist: true });

    it("lets the leader's appends leave before its own write and keeps votes after it", () => {
      const { raw, drain } = leader();
      raw.step(ack(2, 2));
      drain();
      raw.propose(new Uint8Array([7]));
      const rd = raw.ready();
      expect(rd.entries.map((e) => e.index)).toEqual([3]);
      expect(rd.mustSync).toBe(true);
      // (Node 3 never answered its probe, so only node 2 gets the entry.)
      expect(rd.earlyMessages.map((m) => [m.type, m.to])).toEqual([["app", 2]]);
      expect(rd.messages).toEqual([]);

      const follower = node(3, [1, 2, 3], { sendBeforePersist: true });
      follower.raw.step({
        type: "vote",
        from: 2,
        to: 3,
        term: 2,
        index: 1,
        logTerm: 1,
        transfer: false,
      });
      const frd = follower.raw.ready();
      expect(frd.earlyMessages).toEqual([]);
      expect(frd.messages).toMatchObject([{ type: "voteResp", reject: false }]);
    });

    it("counts the leader's own copy only once advance() reports it durable", () => {
      const { raw, storage, drain } = leader();
      raw.step(ack(2, 2));
      drain();
      raw.propose(new Uint8Array([7]));
      const rd = raw.ready();
      // A follower stores index 3 while the leader's own write is still running: one copy
      // on disk is not a majority of three, so nothing commits yet.
      raw.step(ack(2, 3));
      expect(raw.raft.log.committed).toBe(2);
      persist(storage, rd);
      raw.advance();
      expect(raw.raft.log.committed).toBe(3);
      const next = raw.ready();
      expect(next.committedEntries.map((e) => e.index)).toEqual([3]);
    });
  });
});
