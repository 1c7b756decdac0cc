import { KVService } from "@quartet/proto/quartet/consensus/v1/kv_pb";
import { LeaseService } from "@quartet/proto/quartet/consensus/v1/lease_pb";
import type { NodeId } from "@quartet/raft";
import type { Logger } from "@quartet/server";
import type { ReplicatedService } from "../node/member.ts";
import { CommandWriter } from "./commands.ts";
import { ForwardingClients } from "./forwarding.ts";
import { createKvService } from "./kv-service.ts";
import { LeaderRouter } from "./leader-router.ts";
import { LeaseKeeper } from "./lease-keeper.ts";
import { createLeaseService } from "./lease-service.ts";
import { ReplicatedState } from "./replicated-state.ts";

export interface ConsensusServiceOptions {
  clusterId: bigint;
  self: NodeId;
  /** Every member's base URL, for calls forwarded to the leader. */
  peers: ReadonlyMap<NodeId, string>;
  logger: Logger;
}

/** The consensus service's replicated state and public RPCs, for startMember. */
export function createConsensusService(options: ConsensusServiceOptions): ReplicatedService {
  const state = new ReplicatedState();
  const forwarding = new ForwardingClients(options.self, options.peers);
  let router: LeaderRouter | undefined;
  let leases: LeaseKeeper | undefined;
  return {
    stateMachine: state,
    routes(r, node) {
      router = new LeaderRouter(node);
      const writer = new CommandWriter({ clusterId: options.clusterId, node, router });
      leases = new LeaseKeeper({ writer, state, logger: options.logger });
      const deps = { writer, router, state, forwarding };
      r.service(KVService, createKvService(deps));
      r.service(LeaseService, createLeaseService(deps));
    },
    onRoleChange(status) {
      router?.leaderChanged();
      leases?.roleChanged(status.state === "leader");
    },
    close() {
      leases?.stop();
    },
  };
}
