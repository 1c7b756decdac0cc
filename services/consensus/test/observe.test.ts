import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { MaintenanceService } from "@quartet/proto/quartet/consensus/v1/cluster_pb";
import { FaultService } from "@quartet/proto/quartet/consensus/v1/faults_pb";
import { ObserveService, type RaftView } from "@quartet/proto/quartet/consensus/v1/observe_pb";
import { createLogger } from "@quartet/server";
import { afterEach, describe, expect, it } from "vitest";
import { createFaultService, FaultSwitch } from "../src/service/fault-service.ts";
import { clusterAuth, enc, refusal, TestCluster } from "./support/cluster.ts";

let cluster: TestCluster | undefined;
afterEach(async () => {
  await cluster?.stop();
  cluster = undefined;
});

const auth = clusterAuth;

/** Each member's WatchRaft stream, read in the background; `until` waits for a view. */
function watch(c: TestCluster, id: number) {
  const controller = new AbortController();
  const client = c.client(ObserveService, id);
  const views: RaftView[] = [];
  let notify: (() => void) | undefined;
  const done = (async () => {
    for await (const res of client.watchRaft(
      { minIntervalMs: 20 },
      { ...auth, signal: controller.signal },
    )) {
      views.push(res.view!);
      notify?.();
    }
  })().catch(() => {});
  return {
    views,
    /** Resolves with the first view (from now on, or already seen) that matches. */
    async until(match: (v: RaftView) => boolean): Promise<RaftView> {
      for (;;) {
        const found = views.find(match);
        if (found) return found;
        await new Promise<void>((resolve) => {
          notify = resolve;
        });
      }
    },
    async close() {
      controller.abort();
      await done;
    },
  };
}

describe("the dashboard's Raft view and fault controls", () => {
  it("streams elections and commits, and isolating the leader makes the majority elect another", async () => {
    cluster = await TestCluster.start(3, ["--fault-controls", "true"]);
    const c = cluster;
    const watches = new Map(c.ids.map((id) => [id, watch(c, id)]));
    try {
      // The election is on the streams: some member leads, and every member agrees on it.
      const led = await watches.get(1)!.until((v) => v.leaderId !== 0n);
      const leader = Number(led.leaderId);
      const leaderView = await watches.get(leader)!.until((v) => v.role === "leader");
      expect(leaderView.term).toBe(led.term);
      expect(leaderView.voters).toEqual([1n, 2n, 3n]);
      expect(leaderView.votedFor).toBe(BigInt(leader));

      // A write shows up as commit and apply on every member, and as progress on the leader.
      await c.kv(leader).put({ key: enc("seen"), value: enc("1") });
      const committed = await watches.get(leader)!.until((v) => v.commitIndex > led.commitIndex);
      for (const id of c.ids) {
        await watches.get(id)!.until((v) => v.appliedIndex >= committed.commitIndex);
      }
      const withProgress = await watches
        .get(leader)!
        .until(
          (v) =>
            v.progress.length === 3 &&
            v.progress.every((p) => p.matchIndex >= committed.commitIndex),
        );
      expect(withProgress.progress.map((p) => p.memberId)).toEqual([1n, 2n, 3n]);

      // Cut the leader off: the other two elect a new leader in a later term.
      const faults = (id: number) => c.client(FaultService, id);
      expect((await faults(leader).isolate({ isolated: true }, auth)).isolated).toBe(true);
      await watches.get(leader)!.until((v) => v.isolated);
      const others = c.ids.filter((id) => id !== leader);
      const next = await watches
        .get(others[0]!)!
        .until((v) => v.leaderId !== 0n && v.leaderId !== BigInt(leader) && v.term > led.term);
      await watches.get(others[1]!)!.until((v) => v.leaderId === next.leaderId);

      // Healed, the old leader learns the new term and follows the new leader.
      await faults(leader).isolate({ isolated: false }, auth);
      await watches
        .get(leader)!
        .until((v) => !v.isolated && v.role === "follower" && v.leaderId === next.leaderId);
    } finally {
      await Promise.all([...watches.values()].map((w) => w.close()));
    }
  }, 60_000);

  it("needs the credential, and Crash ends the member's process", async () => {
    cluster = await TestCluster.start(1, ["--fault-controls", "true"]);
    const member = cluster.members.get(1)!;
    const transport = createGrpcTransport({ baseUrl: member.url });
    const refused = await refusal(createClient(MaintenanceService, transport).status({}));
    expect(refused.code).toBe(Code.Unauthenticated);
    const crashed = await createClient(FaultService, transport).crash({}, auth);
    expect(crashed.pid).toBe(member.pid);
    expect((await member.exited).signal).toBe("SIGKILL");
  }, 60_000);

  it("refuses fault controls on a member started without --fault-controls", () => {
    const service = createFaultService({
      faults: new FaultSwitch(),
      enabled: false,
      logger: createLogger("test"),
      changed: () => {},
    });
    let error: ConnectError | undefined;
    try {
      service.isolate!({ isolated: true } as never, {} as never);
    } catch (e) {
      error = ConnectError.from(e);
    }
    expect(error?.code).toBe(Code.PermissionDenied);
    expect(error?.rawMessage).toContain("--fault-controls");
  });
});
