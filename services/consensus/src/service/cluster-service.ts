import { create } from "@bufbuild/protobuf";
import {
  type CallOptions,
  type Client,
  Code,
  ConnectError,
  type HandlerContext,
  type ServiceImpl,
} from "@connectrpc/connect";
import {
  ClusterService,
  type Member,
  MemberSchema,
} from "@quartet/proto/quartet/consensus/v1/cluster_pb";
import type { ConfChange, ConfState, NodeId, Status } from "@quartet/raft";
import { encodeContext, type Membership, membersOf } from "../node/membership.ts";
import { NotLeaderError, ProposalDroppedError, type RaftNode } from "../node/raft-node.ts";
import type { CommandWriter } from "./commands.ts";
import { type ForwardingClients, forwardedHeader } from "./forwarding.ts";
import type { LeaderRouter } from "./leader-router.ts";
import { checkPeerUrls } from "./peer-urls.ts";
import { quorumRefusal, type VoterChange } from "./quorum-check.ts";
import type { ReplicatedState } from "./replicated-state.ts";

export interface ClusterDeps {
  node: RaftNode;
  writer: CommandWriter;
  router: LeaderRouter;
  state: ReplicatedState;
  forwarding: ForwardingClients;
  membership: Membership;
}

/**
 * etcd's rule for promotion: a learner is in sync once its log holds 90% of the leader's,
 * so the new voter does not hold up commits while it catches up the rest.
 */
const learnerReadyFraction = 0.9;

type Forward<R> = (client: Client<typeof ClusterService>, options: CallOptions) => Promise<R>;

/**
 * quartet.consensus.v1.ClusterService, behind the cluster credential: the membership, and
 * changes to it one member at a time (a learner is added, catches up, and is promoted; any
 * member can be removed). Changes are decided on the leader, against its membership (a call
 * to a follower is forwarded to it once); the new member's peer URLs travel in the change
 * itself, so every member, present or future, learns them (see Membership).
 */
export function createClusterService(deps: ClusterDeps): ServiceImpl<typeof ClusterService> {
  const { node, writer, router, state, forwarding, membership } = deps;

  /** `change`, unless the strict reconfiguration check refuses it (then its error is thrown). */
  const strictly = (voters: readonly NodeId[], change: VoterChange): VoterChange => {
    const refusal = quorumRefusal(voters, (v) => node.reachable(v), change);
    if (refusal) throw refusal;
    return change;
  };

  const memberOf = (id: NodeId, conf: ConfState): Member => {
    const urls = membership.peerUrls(id);
    return create(MemberSchema, {
      id: BigInt(id),
      name: `member-${id}`,
      peerUrls: urls,
      clientUrls: urls,
      isLearner: conf.learners.includes(id),
    });
  };
  const membersIn = (conf: ConfState) => membersOf(conf).map((id) => memberOf(id, conf));
  const header = () => writer.header(state.current.revision);

  /**
   * Proposes the change `plan` makes from the leader's status (it throws to refuse), on the
   * leader: here when this member leads, otherwise forwarded to the leader once.
   */
  async function change<R>(
    ctx: HandlerContext,
    plan: (status: Status) => ConfChange,
    forward: Forward<R>,
  ): Promise<{ conf: ConfState } | { forwarded: R }> {
    for (;;) {
      const status = node.status();
      if (status.leaderId !== node.id) {
        return { forwarded: await forwardTo(ctx, status.leaderId, forward) };
      }
      const cc = plan(status);
      try {
        return { conf: (await node.proposeConfChange(cc, ctx.signal)) as ConfState };
      } catch (e) {
        // A new leader replaced the entry: it did not happen; decide again on the new leader.
        if (e instanceof ProposalDroppedError) continue;
        if (!(e instanceof NotLeaderError)) throw e;
        if (e.reason === "not-leader" || e.reason === "no-leader") continue;
        if (e.reason === "conf-change-pending") {
          // A change (or, on a new leader, its log from before its election) is committed
          // but not applied yet: it will be soon, so wait for it within the call's deadline
          // instead of refusing. The next turn of the event loop lets the core catch up.
          await node.waitApplied(status.lastIndex, ctx.signal);
          await new Promise((r) => setImmediate(r));
          continue;
        }
        throw refusal(e);
      }
    }
  }

  /** Forwards the call to `leader`; a call already forwarded once goes on only if `again`. */
  function forwardTo<R>(
    ctx: HandlerContext,
    leader: NodeId,
    forward: Forward<R>,
    again = false,
  ): Promise<R> {
    if (leader === 0) {
      throw new ConnectError(
        "no leader to decide the membership change now (an election is running): retry",
        Code.Unavailable,
      );
    }
    if (ctx.requestHeader.has(forwardedHeader) && !again) {
      throw new ConnectError(
        `leadership moved while the call was forwarded (member ${leader} leads now): retry`,
        Code.Unavailable,
      );
    }
    const { client, headers } = forwarding.to(ClusterService, leader);
    // The leader checks the caller's credential again.
    const authorization = ctx.requestHeader.get("authorization") ?? "";
    return forward(client, { headers: { ...headers, authorization }, signal: ctx.signal });
  }

  const known = (status: Status, rawId: bigint): NodeId => {
    const id = Number(rawId);
    if (!membersOf(status.config).includes(id)) {
      throw new ConnectError(
        `member ${rawId} is not in the cluster: MemberList names the members`,
        Code.NotFound,
      );
    }
    return id;
  };

  return {
    async memberList(req, ctx) {
      if (!req.serializable) await router.readBarrier(ctx);
      return { header: header(), members: membersIn(node.status().config) };
    },

    async memberAddLearner(req, ctx) {
      const peerUrls = checkPeerUrls(req.peerUrls);
      let added = 0;
      const r = await change(
        ctx,
        (status) => {
          for (const id of membersOf(status.config)) {
            const taken = membership.peerUrls(id).find((u) => peerUrls.includes(u));
            if (taken !== undefined) {
              throw new ConnectError(
                `member ${id} already has the peer URL ${taken}: give the new member its own address`,
                Code.AlreadyExists,
              );
            }
          }
          added = membership.nextId(status.config);
          return {
            changes: [{ type: "addLearner", nodeId: added }],
            context: encodeContext({ peerUrls }),
          };
        },
        (client, options) => client.memberAddLearner(req, options),
      );
      if ("forwarded" in r) return r.forwarded;
      return { header: header(), member: memberOf(added, r.conf), members: membersIn(r.conf) };
    },

    async memberPromote(req, ctx) {
      const r = await change(
        ctx,
        (status) => {
          const id = known(status, req.id);
          if (!status.config.learners.includes(id)) {
            throw new ConnectError(
              `member ${id} is already a voter: only a learner can be promoted`,
              Code.FailedPrecondition,
            );
          }
          const match = status.progress[id]?.match ?? 0;
          if (match < Math.floor(status.lastIndex * learnerReadyFraction)) {
            throw new ConnectError(
              `can only promote a learner member which is in sync with leader: member ${id} holds ${match} of the leader's ${status.lastIndex} log entries; wait until it catches up (its Status shows raft_applied_index) and retry`,
              Code.FailedPrecondition,
            );
          }
          return { changes: [strictly(status.config.voters, { type: "addNode", nodeId: id })] };
        },
        (client, options) => client.memberPromote(req, options),
      );
      if ("forwarded" in r) return r.forwarded;
      return { header: header(), members: membersIn(r.conf) };
    },

    async memberRemove(req, ctx) {
      const status = node.status();
      if (status.leaderId === node.id && Number(req.id) === node.id) {
        // Removing the leader: hand leadership to the most caught-up voter first, so the
        // cluster does not wait out an election timeout after the leader steps down. The new
        // leader decides (even if the call came here forwarded). A removal the strict check
        // refuses moves no leadership.
        strictly(status.config.voters, { type: "removeNode", nodeId: node.id });
        const to = await handOver(status, ctx);
        return forwardTo(ctx, to, (client, options) => client.memberRemove(req, options), true);
      }
      const r = await change(
        ctx,
        (s) => {
          const id = known(s, req.id);
          if (s.config.voters.length === 1 && s.config.voters[0] === id) {
            throw new ConnectError(
              `member ${id} is the last voter: add a learner and promote it before removing this one`,
              Code.FailedPrecondition,
            );
          }
          return { changes: [strictly(s.config.voters, { type: "removeNode", nodeId: id })] };
        },
        (client, options) => client.memberRemove(req, options),
      );
      if ("forwarded" in r) return r.forwarded;
      return { header: header(), members: membersIn(r.conf) };
    },
  };

  /** Moves leadership to the most caught-up other voter; resolves with it once it leads. */
  async function handOver(status: Status, ctx: HandlerContext): Promise<NodeId> {
    const others = status.config.voters.filter((id) => id !== node.id);
    if (others.length === 0) {
      throw new ConnectError(
        `member ${node.id} is the last voter: add a learner and promote it before removing this one`,
        Code.FailedPrecondition,
      );
    }
    const match = (id: NodeId) => status.progress[id]?.match ?? 0;
    const target = others.reduce((a, b) => (match(b) > match(a) ? b : a));
    try {
      node.transferLeadership(target);
    } catch (e) {
      if (!(e instanceof NotLeaderError)) throw e;
      throw new ConnectError(
        `cannot hand leadership over before removing the leader (${e.message}): retry`,
        Code.Unavailable,
      );
    }
    await router.until(target, ctx.signal);
    return target;
  }
}

/** A change the core refused, as the error the caller gets. */
function refusal(e: NotLeaderError): ConnectError {
  switch (e.reason) {
    case "invalid-conf-change":
      return new ConnectError(
        `the membership change is not allowed: ${e.message}`,
        Code.FailedPrecondition,
      );
    default:
      return new ConnectError(
        `the leader cannot take the change now (${e.message}): retry`,
        Code.Unavailable,
      );
  }
}
