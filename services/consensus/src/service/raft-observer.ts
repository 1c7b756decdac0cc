import { create, equals } from "@bufbuild/protobuf";
import { type RaftView, RaftViewSchema } from "@quartet/proto/quartet/consensus/v1/observe_pb";
import type { StateType } from "@quartet/raft";
import type { RaftNode } from "../node/raft-node.ts";

const roles: Record<StateType, string> = {
  follower: "follower",
  candidate: "candidate",
  preCandidate: "pre_candidate",
  leader: "leader",
};

/**
 * Tells watchers that a member's Raft state may have changed. The node calls `changed()` after
 * every Ready; that must stay cheap, so it only flags and wakes: each watcher reads the view
 * itself, at its own pace.
 */
export class RaftObserver {
  readonly #listeners = new Set<() => void>();

  changed(): void {
    for (const listener of this.#listeners) listener();
  }

  /** Calls `listener` after every change until the returned function is called. */
  listen(listener: () => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }
}

/** The member's Raft state as the dashboard shows it (observedAtUnixMs left 0). */
export function raftView(node: RaftNode, isolated: boolean): RaftView {
  const s = node.status();
  return create(RaftViewSchema, {
    memberId: BigInt(s.id),
    role: roles[s.state],
    term: BigInt(s.term),
    leaderId: BigInt(s.leaderId),
    votedFor: BigInt(s.vote),
    commitIndex: BigInt(s.commit),
    appliedIndex: BigInt(node.appliedIndex()),
    lastLogIndex: BigInt(s.lastIndex),
    voters: s.config.voters.map(BigInt),
    learners: s.config.learners.map(BigInt),
    progress: Object.entries(s.progress)
      .map(([id, p]) => ({
        memberId: BigInt(id),
        matchIndex: BigInt(p.match),
        nextIndex: BigInt(p.next),
        state: p.state,
        reachable: node.reachable(Number(id)),
      }))
      .sort((a, b) => Number(a.memberId - b.memberId)),
    isolated,
  });
}

/** Whether two views differ in anything but their timestamp. */
export function sameView(a: RaftView, b: RaftView): boolean {
  return equals(RaftViewSchema, { ...a, observedAtUnixMs: 0n }, { ...b, observedAtUnixMs: 0n });
}
