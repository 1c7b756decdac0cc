import { Code, ConnectError, type ServiceImpl } from "@connectrpc/connect";
import { MaintenanceService } from "@quartet/proto/quartet/consensus/v1/cluster_pb";
import { NotLeaderError, type RaftNode } from "../node/raft-node.ts";
import { DurableRaftStorage } from "../storage/raft-storage.ts";
import { asConnectError, type CommandWriter } from "./commands.ts";
import type { ForwardingClients } from "./forwarding.ts";
import type { LeaderRouter } from "./leader-router.ts";
import type { ReplicatedState } from "./replicated-state.ts";

/** Bytes per message of a backup stream. */
const snapshotChunkBytes = 1024 * 1024;

export interface AdminDeps {
  node: RaftNode;
  writer: CommandWriter;
  router: LeaderRouter;
  state: ReplicatedState;
  forwarding: ForwardingClients;
  dataDir: string;
}

/**
 * quartet.consensus.v1.MaintenanceService (status, leadership transfer, a consistent backup, a
 * hash of the history to compare members), behind the cluster credential. ClusterService is in
 * cluster-service.ts.
 */
export function createMaintenanceService(deps: AdminDeps): ServiceImpl<typeof MaintenanceService> {
  const { node, writer, router, state, forwarding } = deps;
  return {
    status() {
      const s = node.status();
      return {
        header: writer.header(state.current.revision),
        leader: BigInt(s.leaderId),
        raftTerm: BigInt(s.term),
        raftIndex: BigInt(s.commit),
        raftAppliedIndex: BigInt(node.appliedIndex()),
        dbSize: BigInt(DurableRaftStorage.sizeOnDisk(deps.dataDir)),
        isLearner: s.config.learners.includes(node.id),
      };
    },
    hashKV(req) {
      const store = state.current.store;
      let rev: bigint;
      try {
        rev = store.readRevision(req.revision);
      } catch (e) {
        throw asConnectError(e);
      }
      return {
        header: writer.header(state.current.revision),
        hash: store.hash(rev),
        hashRevision: rev,
        compactRevision: store.compactRevision,
      };
    },
    async moveLeader(req, ctx) {
      const target = Number(req.targetId);
      if (!node.status().config.voters.includes(target)) {
        throw new ConnectError(
          `member ${target} is not a voter of this cluster; MemberList names the voters`,
          Code.InvalidArgument,
        );
      }
      for (;;) {
        // Already there (an election may have done it since the caller last looked).
        if (node.status().leaderId === target)
          return { header: writer.header(state.current.revision) };
        try {
          node.transferLeadership(target);
          break;
        } catch (e) {
          if (!(e instanceof NotLeaderError)) throw e;
          // During an election the call waits for a leader, within its deadline.
          if (e.leaderId === 0) {
            await router.nextLeader(ctx, e);
            continue;
          }
          if (e.leaderId === node.id) {
            throw new ConnectError(
              `cannot move leadership now (${e.message}); retry in a moment`,
              Code.Unavailable,
            );
          }
          const { client, headers } = forwarding.to(MaintenanceService, e.leaderId);
          // The leader checks the caller's credential again.
          const authorization = ctx.requestHeader.get("authorization") ?? "";
          return client.moveLeader(req, {
            headers: { ...headers, authorization },
            signal: ctx.signal,
          });
        }
      }
      // Done once this member follows the target (or the call's deadline says otherwise).
      await router.until(target, ctx.signal);
      return { header: writer.header(state.current.revision) };
    },
    async *snapshot(_req, ctx) {
      await router.readBarrier(ctx);
      const sm = state.current;
      const blob = sm.encode();
      const header = writer.header(sm.revision);
      for (let at = 0; at < blob.byteLength || at === 0; at += snapshotChunkBytes) {
        const chunk = blob.subarray(at, at + snapshotChunkBytes);
        yield {
          header,
          blob: chunk,
          remainingBytes: BigInt(blob.byteLength - at - chunk.byteLength),
        };
        if (blob.byteLength === 0) break;
      }
    },
  };
}
