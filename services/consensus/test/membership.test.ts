import { Code, ConnectError } from "@connectrpc/connect";
import { ClusterService, MaintenanceService } from "@quartet/proto/quartet/consensus/v1/cluster_pb";
import { ObserveService } from "@quartet/proto/quartet/consensus/v1/observe_pb";
import { afterEach, describe, expect, it } from "vitest";
import { clusterAuth, dec, enc, eventually, refusal, TestCluster } from "./support/cluster.ts";

let cluster: TestCluster | undefined;
/** Stops the test's load, also when the test fails half-way. */
let stopLoad: (() => Promise<void>) | undefined;
afterEach(async () => {
  await stopLoad?.();
  stopLoad = undefined;
  await cluster?.stop();
  cluster = undefined;
});

const auth = { ...clusterAuth, timeoutMs: 10_000 };

/**
 * The refusal `call` ends with once the cluster decides it: Unavailable (no leader for a
 * moment, or leadership moving while the call was forwarded) says to retry, so it is retried.
 */
async function decided(call: () => Promise<unknown>): Promise<ConnectError> {
  for (;;) {
    const e = await refusal(call());
    if (e.code !== Code.Unavailable) return e;
  }
}

describe("membership", () => {
  it("adds a learner under load, which catches up from a snapshot; promotes it; removes the old leader; no acknowledged write is lost", async () => {
    // Snapshots every 10 entries: the learner starts from one, not from the log.
    cluster = await TestCluster.start(3, ["--snapshot-entries", "10"]);
    const c = cluster;
    const members = (id: number) => c.client(ClusterService, id);
    const maintenance = (id: number) => c.client(MaintenanceService, id);

    // The load: one writer putting distinct keys through the founders in turn (the ones
    // still running), recording what was acknowledged, until told to stop.
    const acked = new Map<string, string>();
    let stopping = false;
    let n = 0;
    let progressed: (() => void) | undefined;
    const waitForWrites = async (count: number) => {
      const target = acked.size + count;
      while (acked.size < target) await new Promise<void>((r) => (progressed = r));
    };
    const load = (async () => {
      while (!stopping) {
        const key = `load/${String(n).padStart(6, "0")}`;
        const value = `v${n++}`;
        try {
          const founders = [1, 2, 3].filter((id) => c.members.has(id));
          if (founders.length === 0) break;
          const to = founders[n % founders.length]!;
          await c.kv(to).put({ key: enc(key), value: enc(value) }, { timeoutMs: 2000 });
          acked.set(key, value);
          progressed?.();
        } catch {
          // Not acknowledged (an election, the removed leader): it may or may not be there.
        }
      }
    })();
    stopLoad = async () => {
      stopping = true;
      await load;
    };
    await waitForWrites(50);

    // Bad input changes nothing.
    const badUrl = await refusal(members(1).memberAddLearner({ peerUrls: ["not a url"] }, auth));
    expect(badUrl.code).toBe(Code.InvalidArgument);
    expect(badUrl.rawMessage).toMatch(/peer_urls\[0\] "not a url" is not a URL/);
    const unknown = await refusal(members(2).memberPromote({ id: 99n }, auth));
    expect(unknown.code).toBe(Code.NotFound);
    expect((await refusal(members(3).memberRemove({ id: 99n }, auth))).code).toBe(Code.NotFound);

    // Added through a follower (forwarded to the leader), before it runs.
    const newUrl = await c.reserve(4);
    const added = await members(2).memberAddLearner({ peerUrls: [newUrl] }, auth);
    expect(added.member?.id).toBe(4n);
    expect(added.member?.isLearner).toBe(true);
    expect(added.member?.peerUrls).toEqual([newUrl]);
    expect(added.members.map((m) => Number(m.id))).toEqual([1, 2, 3, 4]);
    const again = await refusal(members(1).memberAddLearner({ peerUrls: [newUrl] }, auth));
    expect(again.code).toBe(Code.AlreadyExists);
    // Not running yet, so not in sync: etcd's refusal.
    const early = await refusal(members(3).memberPromote({ id: 4n }, auth));
    expect(early.code).toBe(Code.FailedPrecondition);
    expect(early.rawMessage).toMatch(
      /can only promote a learner member which is in sync with leader/,
    );

    await c.join(4);
    // A linearizable read on the learner returns once it has applied everything committed
    // before the read: it has caught up (from the leader's snapshot: the log before it is gone).
    for (;;) {
      try {
        await c.kv(4).range({ key: enc("load/") }, { timeoutMs: 5000 });
        await members(1).memberPromote({ id: 4n }, auth);
        break;
      } catch (e) {
        // Still behind the load by more than etcd's 10%: read again, which waits for more.
        if (ConnectError.from(e).code !== Code.FailedPrecondition) throw e;
      }
    }
    const promoted = await members(4).memberList({}, auth);
    expect(promoted.members.find((m) => m.id === 4n)?.isLearner).toBe(false);
    await waitForWrites(10);

    // Remove the leader; it stops serving and exits.
    const leader = Number((await maintenance(4).status({}, auth)).leader);
    expect([1, 2, 3]).toContain(leader);
    // Sent to a follower: forwarded to the leader, which hands leadership over and forwards
    // it once more, to the new leader.
    const removed = await members(4).memberRemove({ id: BigInt(leader) }, auth);
    expect(removed.members.map((m) => Number(m.id))).toEqual(
      [1, 2, 3, 4].filter((id) => id !== leader),
    );
    expect((await c.members.get(leader)!.exited).code).toBe(0);
    c.members.delete(leader);
    await waitForWrites(10);
    await stopLoad();

    // Every acknowledged write, on the new member and on the others, in one linearizable read.
    const survivors = [1, 2, 3, 4].filter((id) => id !== leader);
    for (const id of survivors) {
      const read = await c
        .kv(id)
        .range({ key: enc("load/"), rangeEnd: enc("load0") }, { timeoutMs: 10_000 });
      const stored = new Map(read.kvs.map((kv) => [dec(kv.key), dec(kv.value)]));
      for (const [key, value] of acked) expect(stored.get(key), `${key} on ${id}`).toBe(value);
    }
    // Every member knows the new one's address, and no longer lists the removed one.
    for (const id of survivors) {
      const list = await members(id).memberList({}, auth);
      expect(list.members.map((m) => Number(m.id))).toEqual(survivors);
      expect(list.members.find((m) => m.id === 4n)?.peerUrls).toEqual([newUrl]);
    }
    // A founder restarted with the founders' --peers learns the new member's address from its
    // own log and snapshot, and a write through it reaches the leader.
    const founder = survivors.find((id) => id !== 4)!;
    await c.kill(founder);
    await c.startMember(founder, [], [1, 2, 3]);
    const relearnt = await members(founder).memberList({ serializable: true }, auth);
    expect(relearnt.members.find((m) => m.id === 4n)?.peerUrls).toEqual([newUrl]);
    // With the new member leading, the restarted founder forwards the write to its address.
    await maintenance(4).moveLeader({ targetId: 4n }, auth);
    await eventually(() =>
      c.kv(founder).put({ key: enc("after-restart"), value: enc("1") }, { timeoutMs: 3000 }),
    );
    // The removed member does not come back on its old data.
    const restart = await c.startMember(leader).then(
      () => "started",
      (e: Error) => e.message,
    );
    expect(restart).toMatch(/was removed from the cluster/);
    // (About 15 s on an idle machine; the bound is for a loaded one.)
  }, 180_000);

  it("refuses to remove a member that answers while another voter is down, and removes the one that is down", async () => {
    // The production tick (100 ms; the tests' default is 20 ms): a follower that a loaded
    // machine starves for an election timeout campaigns and has no leader for a moment, and
    // this test needs the same leader from start to end.
    cluster = await TestCluster.start(3, ["--tick-ms", "100"]);
    const c = cluster;
    const members = (id: number) => c.client(ClusterService, id);
    // Each member's Raft view, as it changes.
    const views = (id: number) =>
      c.client(ObserveService, id).watchRaft({ minIntervalMs: 20 }, { ...auth, timeoutMs: 30_000 });
    let leader = 0;
    for await (const { view } of views(1)) {
      leader = Number(view?.leaderId ?? 0);
      if (leader !== 0) break;
    }
    const [down, up] = [1, 2, 3].filter((id) => id !== leader) as [number, number];
    await c.kill(down);
    // The leader's view says when it stopped hearing from the member.
    for await (const { view } of views(leader)) {
      if (view?.progress.some((p) => Number(p.memberId) === down && !p.reachable)) break;
    }

    // Sent to the follower that is up, forwarded to the leader, refused there: the two voters
    // left would be the leader and the member that is down.
    const refused = await decided(() => members(up).memberRemove({ id: BigInt(up) }, auth));
    expect(refused.code).toBe(Code.FailedPrecondition);
    expect(refused.rawMessage).toBe(
      `removing member ${up} would leave 2 voters and the leader hears from only 1 of them (nothing from member ${down} within an election timeout), short of their quorum of 2: bring those members back, or remove them first`,
    );
    // Removing the leader is refused before it hands leadership over.
    const leaderRefused = await decided(() =>
      members(up).memberRemove({ id: BigInt(leader) }, auth),
    );
    expect(leaderRefused.code).toBe(Code.FailedPrecondition);
    expect(leaderRefused.rawMessage).toMatch(`removing member ${leader} would leave 2 voters`);
    const after = await c.client(MaintenanceService, up).status({}, auth);
    expect(Number(after.leader)).toBe(leader);
    expect((await members(leader).memberList({}, auth)).members.map((m) => Number(m.id))).toEqual([
      1, 2, 3,
    ]);
    // The member that is down can go; the two left commit writes.
    const removed = await members(up).memberRemove({ id: BigInt(down) }, auth);
    expect(removed.members.map((m) => Number(m.id))).toEqual([leader, up].sort((a, b) => a - b));
    await c.kv(up).put({ key: enc("after"), value: enc("1") }, { timeoutMs: 10_000 });
  }, 60_000);

  it("refuses to remove the last voter", async () => {
    cluster = await TestCluster.start(1);
    const c = cluster;
    const members = c.client(ClusterService, 1);
    // Unavailable while it elects itself.
    const e = await decided(() => members.memberRemove({ id: 1n }, auth));
    expect(e.code).toBe(Code.FailedPrecondition);
    expect(e.rawMessage).toMatch(/member 1 is the last voter/);
    const list = await members.memberList({}, auth);
    expect(list.members.map((m) => Number(m.id))).toEqual([1]);
  }, 60_000);
});
