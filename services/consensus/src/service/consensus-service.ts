import { KVService } from "@quartet/proto/quartet/consensus/v1/kv_pb";
import type { NodeId } from "@quartet/raft";
import type { ReplicatedService } from "../node/member.ts";
import { ForwardingClients } from "./forwarding.ts";
import { createKvService } from "./kv-service.ts";
import { LeaderRouter } from "./leader-router.ts";
import { ReplicatedState } from "./replicated-state.ts";

export interface ConsensusServiceOptions {
  clusterId: bigint;
  self: NodeId;
  /** Every member's base URL, for calls forwarded to the leader. */
  peers: ReadonlyMap<NodeId, string>;
}

/** The consensus service's replicated state and public RPCs, for startMember. */
export function createConsensusService(options: ConsensusServiceOptions): ReplicatedService {
  const state = new ReplicatedState();
  const forwarding = new ForwardingClients(options.self, options.peers);
  let router: LeaderRouter | undefined;
  return {
    stateMachine: state,
    routes(r, node) {
      router = new LeaderRouter(node);
      r.service(
        KVService,
        createKvService({ clusterId: options.clusterId, node, router, state, forwarding }),
      );
    },
    onRoleChange() {
      router?.leaderChanged();
    },
  };
}
