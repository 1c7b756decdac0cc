// Acceptance tests of the consensus service against real member processes on loopback:
// SIGKILL, partitions through TCP proxies, and histories checked for linearizability.
import { create } from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";
import { randomInt, seededRandom } from "@quartet/determinism";
import {
  checkOperations,
  describeFailure,
  HistoryRecorder,
  type KvInput,
  type KvOutput,
  kvModel,
} from "@quartet/linearizability";
import { ClusterService } from "@quartet/proto/quartet/consensus/v1/cluster_pb";
import { FaultService } from "@quartet/proto/quartet/consensus/v1/faults_pb";
import {
  type Compare,
  Compare_CompareResult,
  CompareSchema,
} from "@quartet/proto/quartet/consensus/v1/kv_pb";
import { ObserveService } from "@quartet/proto/quartet/consensus/v1/observe_pb";
import { afterEach, describe, expect, it } from "vitest";
import { clusterAuth, dec, enc, eventually, refusal, TestCluster } from "./support/cluster.ts";

let cluster: TestCluster | undefined;
afterEach(async () => {
  await cluster?.stop();
  cluster = undefined;
});

/** The member that leads: a forwarded write is answered by the leader. */
async function leaderOf(c: TestCluster, via: number): Promise<number> {
  const res = await eventually(() =>
    c.kv(via).put({ key: enc("leader-probe"), value: enc("x") }, { timeoutMs: 2000 }),
  );
  return Number(res.header?.memberId);
}

const valueIs = (key: string, value: string): Compare =>
  create(CompareSchema, {
    key: enc(key),
    result: Compare_CompareResult.EQUAL,
    targetUnion: { case: "value", value: enc(value) },
  });

describe("a 3-member cluster of real processes", () => {
  it("takes writes on any member and reads them linearizably on any other, with compare-and-set", async () => {
    cluster = await TestCluster.start();
    const c = cluster;
    const put = await eventually(() =>
      c.kv(2).put({ key: enc("greeting"), value: enc("hello") }, { timeoutMs: 2000 }),
    );
    expect(put.header?.revision).toBeGreaterThan(0n);
    const read = await c.kv(3).range({ key: enc("greeting") });
    expect(read.kvs.map((kv) => dec(kv.value))).toEqual(["hello"]);
    const cas = await c.kv(1).txn({
      compare: [valueIs("greeting", "hello")],
      success: [
        { request: { case: "requestPut", value: { key: enc("greeting"), value: enc("hi") } } },
      ],
    });
    expect(cas.succeeded).toBe(true);
    const stale = await c.kv(3).txn({
      compare: [valueIs("greeting", "hello")],
      success: [
        { request: { case: "requestPut", value: { key: enc("greeting"), value: enc("no") } } },
      ],
    });
    expect(stale.succeeded).toBe(false);
    expect(dec((await c.kv(2).range({ key: enc("greeting") })).kvs[0]!.value)).toBe("hi");
  }, 60_000);

  it("a write a follower takes just after the leader dies waits for the next leader", async () => {
    cluster = await TestCluster.start(3, [], {}, { directLinks: true });
    const c = cluster;
    const leader = await leaderOf(c, 1);
    // A follower that has not forwarded anything yet (leaderOf forwarded through member 1),
    // so its forward after the kill opens a connection, which the dead port refuses. A
    // linearizable read through it asks the leader (over Raft, not a forward), so it knows
    // who leads.
    const follower = c.ids.find((id) => id !== leader && id !== 1)!;
    const seen = await c.kv(follower).range({ key: enc("leader-probe") }, { timeoutMs: 2000 });
    expect(seen.kvs.map((kv) => dec(kv.value))).toEqual(["x"]);
    await c.kill(leader);
    // The follower still takes the dead member for its leader (an election takes at least
    // 10 ticks): its forward is refused, and the call waits for the election instead of
    // failing. One call, no retry.
    const put = await c
      .kv(follower)
      .put({ key: enc("after"), value: enc("2") }, { timeoutMs: 5000 });
    expect(Number(put.header?.memberId)).not.toBe(leader);
    const read = await c.kv(follower).range({ key: enc("after") }, { timeoutMs: 5000 });
    expect(read.kvs.map((kv) => dec(kv.value))).toEqual(["2"]);
  }, 60_000);

  // A write and a membership change, each sent to a follower and forwarded to the leader.
  const forwardedCalls = [
    {
      what: "write",
      call: (c: TestCluster, via: number) =>
        c.kv(via).put({ key: enc("lost"), value: enc("1") }, { timeoutMs: 20_000 }),
      /** How many of the things it adds the cluster holds afterwards. */
      after: async (c: TestCluster, via: number) =>
        (await c.kv(via).range({ key: enc("lost") }, { timeoutMs: 2000 })).kvs.length,
    },
    {
      what: "membership change",
      call: (c: TestCluster, via: number) =>
        c
          .client(ClusterService, via)
          .memberAddLearner(
            { peerUrls: ["http://127.0.0.1:1"] },
            { ...clusterAuth, timeoutMs: 20_000 },
          ),
      after: async (c: TestCluster, via: number) =>
        (await c.client(ClusterService, via).memberList({}, { ...clusterAuth, timeoutMs: 2000 }))
          .members.length - 3,
    },
  ];
  it.each(forwardedCalls)(
    "a forwarded $what whose leader dies under it fails with Unavailable that says it may have taken effect",
    async ({ call, after }) => {
      // The production tick (100 ms): the isolated leader steps down only after a second, long
      // after the forwarded call reached it.
      cluster = await TestCluster.start(
        3,
        ["--fault-controls", "true", "--tick-ms", "100"],
        {},
        { directLinks: true },
      );
      const c = cluster;
      const leader = await leaderOf(c, 1);
      const follower = c.ids.find((id) => id !== leader)!;
      // Cut the leader off from its peers (clients still reach it): the forwarded call is
      // proposed there and cannot commit, so it is open on the leader when it dies.
      const stream = c
        .client(ObserveService, leader)
        .watchRaft({ minIntervalMs: 20 }, clusterAuth)
        [Symbol.asyncIterator]();
      const first = (await stream.next()).value!.view!;
      await c.client(FaultService, leader).isolate({ isolated: true }, clusterAuth);
      const forwarded = refusal(call(c, follower));
      for (;;) {
        const view = (await stream.next()).value!.view!;
        if (view.lastLogIndex > first.lastLogIndex) break;
      }
      await c.kill(leader);
      await stream.return?.();
      const error = await forwarded;
      expect(error.code).toBe(Code.Unavailable);
      expect(error.rawMessage).toContain(`the connection to the leader, member ${leader}, closed`);
      expect(error.rawMessage).toContain("it may or may not have taken effect");
      // Here it did not: the leader that had it could not replicate it.
      expect(await eventually(() => after(c, follower))).toBe(0);
    },
    60_000,
  );

  it("keeps every acknowledged write through SIGKILL of the leader, a follower, then all three", async () => {
    cluster = await TestCluster.start();
    const c = cluster;
    const acked = new Set<number>();
    let stop = false;
    let next = 0;
    // Four writers; each write puts two keys in one transaction, so a half-applied write shows.
    const writer = async (via: number) => {
      while (!stop) {
        const n = next++;
        try {
          await c.kv(via).txn(
            {
              success: ["a", "b"].map((half) => ({
                request: {
                  case: "requestPut" as const,
                  value: { key: enc(`w/${n}/${half}`), value: enc(String(n)) },
                },
              })),
            },
            { timeoutMs: 2000 },
          );
          acked.add(n);
        } catch {
          // Unknown outcome: it may or may not be there, but never half.
        }
      }
    };
    const untilAcked = async (count: number) => {
      const target = acked.size + count;
      while (acked.size < target) await new Promise((r) => setImmediate(r));
    };
    const writers = [1, 2, 3, 1].map((via) => writer(via).catch(() => {}));
    await untilAcked(50);
    const leader = await leaderOf(c, 1);
    await c.kill(leader);
    await untilAcked(50);
    const follower = c.ids.find((id) => c.members.has(id) && id !== leader)!;
    await c.kill(follower);
    await c.startMember(leader);
    await c.startMember(follower);
    await untilAcked(50);
    stop = true;
    await Promise.all(writers);
    for (const id of c.ids) await c.kill(id);
    for (const id of c.ids) await c.startMember(id);

    const all = await eventually(() =>
      c.kv(1).range({ key: enc("w/"), rangeEnd: enc("w0") }, { timeoutMs: 2000 }),
    );
    const halves = new Map<string, string[]>();
    for (const kv of all.kvs) {
      const [, n, half] = dec(kv.key).split("/");
      halves.set(n!, [...(halves.get(n!) ?? []), half!]);
    }
    for (const n of acked)
      expect(halves.get(String(n)), `acknowledged write ${n}`).toEqual(["a", "b"]);
    for (const [n, parts] of halves) expect(parts, `write ${n} is whole`).toEqual(["a", "b"]);
  }, 120_000);

  it("a leader cut off on the minority side serves no linearizable read or write; the majority goes on", async () => {
    cluster = await TestCluster.start();
    const c = cluster;
    await eventually(() =>
      c.kv(1).put({ key: enc("k"), value: enc("before") }, { timeoutMs: 2000 }),
    );
    const leader = await leaderOf(c, 1);
    const others = c.ids.filter((id) => id !== leader);
    c.partition([leader], others);
    const write = await refusal(
      c.kv(leader).put({ key: enc("k"), value: enc("minority") }, { timeoutMs: 1500 }),
    );
    expect([Code.Unavailable, Code.DeadlineExceeded]).toContain(write.code);
    const read = await refusal(c.kv(leader).range({ key: enc("k") }, { timeoutMs: 1500 }));
    expect([Code.Unavailable, Code.DeadlineExceeded]).toContain(read.code);
    // The majority elects a leader among itself and takes writes.
    const res = await eventually(() =>
      c.kv(others[0]!).put({ key: enc("k"), value: enc("majority") }, { timeoutMs: 2000 }),
    );
    expect(others).toContain(Number(res.header?.memberId));
    c.heal();
    // Healed, the old leader follows and its reads see the majority's write, not its own.
    const after = await eventually(() =>
      c.kv(leader).range({ key: enc("k") }, { timeoutMs: 2000 }),
    );
    expect(dec(after.kvs[0]!.value)).toBe("majority");
  }, 60_000);

  const seeds = [1, 2, 3];
  it.each(seeds)(
    "histories of put/get/CAS under kills and partitions are linearizable (seed %i)",
    async (seed) => {
      cluster = await TestCluster.start();
      const c = cluster;
      await eventually(() =>
        c.kv(1).put({ key: enc("warm"), value: enc("up") }, { timeoutMs: 2000 }),
      );
      const random = seededRandom(seed);
      const recorder = new HistoryRecorder<KvInput, KvOutput>({ unknown: { kind: "unknown" } });
      const keys = ["x", "y", "z"];
      let completed = 0;
      let written = 0;
      const opsPerClient = 60;
      const client = async (clientId: number) => {
        for (let i = 0; i < opsPerClient; i++) {
          const live = c.ids.filter((id) => c.members.has(id));
          const via = live[randomInt(random, live.length)]!;
          const key = keys[randomInt(random, keys.length)]!;
          const kind = randomInt(random, 3);
          const kv = c.kv(via);
          const opts = { timeoutMs: 1500 };
          if (kind === 0) {
            await recorder.run(
              clientId,
              { kind: "get", key },
              async () => {
                const r = await kv.range({ key: enc(key) }, opts);
                return { kind: "get", value: r.kvs[0] ? dec(r.kvs[0].value) : null };
              },
              () => true, // a failed read changed nothing
            );
          } else if (kind === 1) {
            const value = `${clientId}.${written++}`;
            await recorder.run(clientId, { kind: "put", key, value }, async () => {
              await kv.put({ key: enc(key), value: enc(value) }, opts);
              return { kind: "put" };
            });
          } else {
            const value = `${clientId}.${written++}`;
            // Compare with a value this client may have seen: the last one written to this key.
            const expected =
              randomInt(random, 2) === 0
                ? null
                : `${randomInt(random, 4)}.${randomInt(random, Math.max(1, written))}`;
            await recorder.run(clientId, { kind: "cas", key, expected, value }, async () => {
              const compare: Compare =
                expected === null
                  ? create(CompareSchema, {
                      key: enc(key),
                      result: Compare_CompareResult.EQUAL,
                      targetUnion: { case: "version", value: 0n },
                    })
                  : valueIs(key, expected);
              const r = await kv.txn(
                {
                  compare: [compare],
                  success: [
                    {
                      request: { case: "requestPut", value: { key: enc(key), value: enc(value) } },
                    },
                  ],
                },
                opts,
              );
              return { kind: "cas", succeeded: r.succeeded };
            });
          }
          completed++;
        }
      };
      // Faults at op counts chosen by the seed: kill or partition one member, then heal and
      // restart; never more than one member down, so the cluster can make progress.
      const total = 4 * opsPerClient;
      const faults = (async () => {
        while (completed < total - 20) {
          const at = completed + 15 + randomInt(random, 20);
          // `at` may lie past the last operation: stop waiting when the clients are done.
          while (completed < at && completed < total) await new Promise((r) => setImmediate(r));
          if (completed >= total) break;
          const victim = c.ids[randomInt(random, c.ids.length)]!;
          if (randomInt(random, 2) === 0) {
            await c.kill(victim);
            const back = completed + 10 + randomInt(random, 15);
            while (completed < back && completed < total) await new Promise((r) => setImmediate(r));
            await c.startMember(victim);
          } else {
            c.partition(
              [victim],
              c.ids.filter((id) => id !== victim),
            );
            const back = completed + 10 + randomInt(random, 15);
            while (completed < back && completed < total) await new Promise((r) => setImmediate(r));
            c.heal();
          }
        }
      })();
      await Promise.all([0, 1, 2, 3].map(client));
      await faults;
      const result = checkOperations(kvModel, recorder.history());
      expect(result.outcome, `seed ${seed}: ${describeFailure(kvModel, result)}`).toBe("ok");
      // The run did real work: most operations answered.
      expect(
        recorder.history().filter((op) => op.output.kind !== "unknown").length,
      ).toBeGreaterThan(100);
    },
    180_000,
  );
});
