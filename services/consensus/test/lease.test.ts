import { LeaseService } from "@quartet/proto/quartet/consensus/v1/lease_pb";
import { Event_EventType } from "@quartet/proto/quartet/consensus/v1/watch_pb";
import { afterEach, describe, expect, it } from "vitest";
import { ConsensusClient } from "../src/client.ts";
import { enc, eventually, TestCluster } from "./support/cluster.ts";

let cluster: TestCluster | undefined;
afterEach(async () => {
  await cluster?.stop();
  cluster = undefined;
});

function leases(c: TestCluster, id: number) {
  return c.client(LeaseService, id);
}

const exists = async (c: TestCluster, via: number, key: string) =>
  (await c.kv(via).range({ key: enc(key) }, { timeoutMs: 2000 })).kvs.length === 1;

describe("leases", () => {
  it("keep their keys while kept alive, and delete them when they expire", async () => {
    cluster = await TestCluster.start();
    const c = cluster;
    const { id } = await eventually(() =>
      leases(c, 1).leaseGrant({ ttl: 2n }, { timeoutMs: 2000 }),
    );
    const put = await c.kv(2).put({ key: enc("session"), value: enc("alive"), lease: id });
    // Renewed for longer than its TTL, the key stays. (The TTL leaves a loaded machine 1.7 s
    // for each renewal: renewals, not the machine's speed, keep the lease.)
    for (let i = 0; i < 10; i++) {
      await new Promise((r) => setTimeout(r, 300));
      await leases(c, 3).leaseKeepAliveOnce({ id });
    }
    expect(await exists(c, 1, "session")).toBe(true);
    // No more renewals: the leader expires the lease through the log, and the key's deletion
    // arrives as a watch event.
    const client = new ConsensusClient({ endpoints: [`http://127.0.0.1:${c.ports.get(2)}`] });
    const stop = new AbortController();
    // From the put on, so a deletion that came before the watch started is replayed.
    const from = put.header!.revision + 1n;
    for await (const e of client.watch({ key: enc("session"), startRevision: from }, stop.signal)) {
      if (e.type === Event_EventType.DELETE) break;
    }
    stop.abort();
    expect(await exists(c, 2, "session")).toBe(false);
    const ttl = await leases(c, 1).leaseTimeToLive({ id });
    expect(ttl.ttl).toBe(-1n);
  }, 60_000);

  it("survive an election: the new leader gives every lease a full TTL again", async () => {
    cluster = await TestCluster.start();
    const c = cluster;
    const { id } = await eventually(() =>
      leases(c, 1).leaseGrant({ ttl: 4n }, { timeoutMs: 2000 }),
    );
    const put = await c.kv(1).put({ key: enc("owned"), value: enc("x"), lease: id });
    const leader = Number(put.header?.memberId);
    await leases(c, 1).leaseKeepAliveOnce({ id });
    const renewedAt = performance.now();
    // The other two are cut from each other (the leader still has a majority with either),
    // then the leader dies: no new leader until the link heals, 3 s after the last renewal.
    const [a, b] = c.ids.filter((m) => m !== leader) as [number, number];
    c.partition([a], [b]);
    await c.kill(leader);
    await new Promise((r) => setTimeout(r, 3000 - (performance.now() - renewedAt)));
    c.heal();
    // 4.6 s after the last renewal the lease's old deadline (4 s) has passed; the new leader
    // gave it a full 4 s from its election (at >= 3 s), so the key is still there.
    await new Promise((r) => setTimeout(r, 4600 - (performance.now() - renewedAt)));
    expect(await eventually(() => exists(c, a, "owned"))).toBe(true);
  }, 60_000);
});
