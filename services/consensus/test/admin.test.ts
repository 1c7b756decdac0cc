import { readdirSync } from "node:fs";
import { join } from "node:path";
import { create } from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";
import { ClusterService, MaintenanceService } from "@quartet/proto/quartet/consensus/v1/cluster_pb";
import { RangeRequestSchema } from "@quartet/proto/quartet/consensus/v1/kv_pb";
import { afterEach, describe, expect, it } from "vitest";
import { ConsensusStateMachine } from "../src/state/state-machine.ts";
import { clusterAuth, refusal, TestCluster } from "./support/cluster.ts";

let cluster: TestCluster | undefined;
afterEach(async () => {
  await cluster?.stop();
  cluster = undefined;
});

const auth = clusterAuth;

describe("cluster administration", () => {
  it("needs the cluster credential, reports status and members, and moves leadership", async () => {
    cluster = await TestCluster.start();
    const c = cluster;
    const maintenance = (id: number) => c.client(MaintenanceService, id);
    const members = c.client(ClusterService, 2);

    const refused = await refusal(maintenance(1).status({}));
    expect(refused.code).toBe(Code.Unauthenticated);

    let leader = 0n;
    while (leader === 0n) leader = (await maintenance(1).status({}, auth)).leader;
    const status = await maintenance(1).status({}, auth);
    expect(status.raftTerm).toBeGreaterThan(0n);
    expect(status.dbSize).toBeGreaterThan(0n);

    const list = await members.memberList({}, { ...auth, timeoutMs: 5000 });
    expect(list.members.map((m) => Number(m.id))).toEqual([1, 2, 3]);

    const target = c.ids.find((id) => BigInt(id) !== leader)!;
    // Sent to a follower, it is forwarded to the leader with the caller's credential.
    const follower = c.ids.find((id) => id !== target && BigInt(id) !== leader)!;
    await maintenance(follower).moveLeader(
      { targetId: BigInt(target) },
      { ...auth, timeoutMs: 10_000 },
    );
    expect((await maintenance(target).status({}, auth)).leader).toBe(BigInt(target));

    // A consistent backup: it holds a write acknowledged before it was asked for.
    await c.kv(1).put({ key: new TextEncoder().encode("backed-up"), value: new Uint8Array([1]) });
    const parts: Uint8Array[] = [];
    for await (const chunk of c.client(MaintenanceService, 3).snapshot({}, auth)) {
      parts.push(chunk.blob);
      if (chunk.remainingBytes === 0n) break;
    }
    const restored = ConsensusStateMachine.restore(Buffer.concat(parts));
    const read = restored.range(
      create(RangeRequestSchema, { key: new TextEncoder().encode("backed-up") }),
    );
    expect(read.kvs.length).toBe(1);
  }, 60_000);

  it("snapshots by --snapshot-bytes: every member, long before --snapshot-entries", async () => {
    cluster = await TestCluster.start(3, [
      "--snapshot-entries",
      "1000000",
      "--snapshot-bytes",
      "4096",
    ]);
    const c = cluster;
    /** The highest index of a snapshot file in member `id`'s data directory (1: the bootstrap's). */
    const snapshotAt = (id: number) =>
      Math.max(
        0,
        ...readdirSync(join(c.dataDir, String(id)))
          .filter((name) => name.endsWith(".snap"))
          .map((name) => Number(name.slice("snapshot-".length, -".snap".length))),
      );
    const value = new Uint8Array(1024);
    // 4,096 bytes stretched by member id: at most 6,826, so 7 puts of 1 KiB reach every
    // member's size; the files are written beside the Raft loop, so later puts find them.
    let puts = 0;
    while (puts < 100 && !c.ids.every((id) => snapshotAt(id) > 1)) {
      await c.kv(1).put({ key: new TextEncoder().encode(`k${puts}`), value });
      puts++;
    }
    for (const id of c.ids) expect(snapshotAt(id)).toBeGreaterThanOrEqual(5);
    expect(puts).toBeLessThan(100);
  }, 60_000);

  it("hashes each member's history: the same on every member at one revision, OUT_OF_RANGE beyond it", async () => {
    cluster = await TestCluster.start();
    const c = cluster;
    const maintenance = (id: number) => c.client(MaintenanceService, id);
    const enc = (text: string) => new TextEncoder().encode(text);
    let revision = 0n;
    for (let i = 0; i < 20; i++) {
      const put = await c.kv(1 + (i % 3)).put({ key: enc(`k${i % 7}`), value: enc(`v${i}`) });
      revision = put.header!.revision;
    }
    await c.kv(2).deleteRange({ key: enc("k3") });
    // A linearizable read on each member: each has applied everything written above.
    for (const id of c.ids) await c.kv(id).range({ key: enc("k0") });

    const hashes = await Promise.all(c.ids.map((id) => maintenance(id).hashKV({ revision }, auth)));
    expect(new Set(hashes.map((h) => h.hash)).size).toBe(1);
    expect(hashes.map((h) => h.hashRevision)).toEqual([revision, revision, revision]);
    // The current revision takes in the delete.
    const now = await maintenance(1).hashKV({}, auth);
    expect(now.hashRevision).toBe(revision + 1n);
    expect(now.hash).not.toBe(hashes[0]!.hash);

    const future = await refusal(maintenance(1).hashKV({ revision: revision + 100n }, auth));
    expect(future.code).toBe(Code.OutOfRange);
    expect(future.rawMessage).toMatch(/is a future revision/);
    const anonymous = await refusal(maintenance(1).hashKV({}));
    expect(anonymous.code).toBe(Code.Unauthenticated);
  }, 60_000);
});
