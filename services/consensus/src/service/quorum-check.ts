import { Code, ConnectError } from "@connectrpc/connect";
import type { NodeId } from "@quartet/raft";

/** A membership change the strict check looks at: a learner promoted, or a member removed. */
export interface VoterChange {
  type: "addNode" | "removeNode";
  nodeId: NodeId;
}

/**
 * etcd's strict reconfiguration check: a change is refused when the voters it leaves could
 * not make a quorum of the members the leader hears from, because the cluster would stop
 * committing (this change included) until the silent ones came back. Removing a member the
 * leader does not hear from is always allowed: that is how a cluster gets rid of a dead one.
 * Learners do not vote, so adding or removing one changes no quorum.
 */
export function quorumRefusal(
  voters: readonly NodeId[],
  reachable: (id: NodeId) => boolean,
  change: VoterChange,
): ConnectError | undefined {
  const id = change.nodeId;
  let after: NodeId[];
  if (change.type === "removeNode") {
    if (!voters.includes(id) || !reachable(id)) return undefined;
    after = voters.filter((v) => v !== id);
    // Removing the last voter is refused for a reason of its own.
    if (after.length === 0) return undefined;
  } else {
    if (voters.includes(id)) return undefined;
    after = [...voters, id];
  }
  const silent = after.filter((v) => !reachable(v));
  const quorum = Math.floor(after.length / 2) + 1;
  const up = after.length - silent.length;
  if (up >= quorum) return undefined;
  const what =
    change.type === "removeNode"
      ? `removing member ${id} would leave ${after.length} voters`
      : `promoting member ${id} would make ${after.length} voters`;
  return new ConnectError(
    `${what} and the leader hears from only ${up} of them (nothing from member ${silent.join(", member ")} within an election timeout), short of their quorum of ${quorum}: bring those members back, or remove them first`,
    Code.FailedPrecondition,
  );
}
