import type { NodeId } from "./types.ts";

/** The outcome of an election (or of any yes/no poll) so far. */
export type VoteResult = "pending" | "lost" | "won";

/**
 * The highest index acknowledged by a majority of `voters`, given each voter's match index.
 * An empty configuration places no constraint (Infinity), which makes a non-joint config the
 * joint config "(voters) && ()". `scratch` avoids an allocation per call.
 */
export function majorityCommitted(
  voters: readonly NodeId[],
  matchOf: ReadonlyMap<NodeId, { match: number }>,
  scratch: number[],
): number {
  const n = voters.length;
  if (n === 0) return Number.POSITIVE_INFINITY;
  for (let i = 0; i < n; i++) {
    const m = matchOf.get(voters[i]!)?.match ?? 0;
    // Insertion sort, descending: configurations are small.
    let j = i;
    while (j > 0 && scratch[j - 1]! < m) {
      scratch[j] = scratch[j - 1]!;
      j--;
    }
    scratch[j] = m;
  }
  return scratch[n >> 1]!;
}

/** The commit index of a joint configuration: what both halves agree on. */
export function jointCommitted(
  incoming: readonly NodeId[],
  outgoing: readonly NodeId[],
  matchOf: ReadonlyMap<NodeId, { match: number }>,
  scratch: number[],
): number {
  const a = majorityCommitted(incoming, matchOf, scratch);
  const b = majorityCommitted(outgoing, matchOf, scratch);
  return Math.min(a, b);
}

/** Tallies `votes` (true = granted) over `voters`; an empty config wins any vote. */
export function majorityVoteResult(
  voters: readonly NodeId[],
  votes: ReadonlyMap<NodeId, boolean>,
): VoteResult {
  const n = voters.length;
  if (n === 0) return "won";
  let granted = 0;
  let missing = 0;
  for (let i = 0; i < n; i++) {
    const v = votes.get(voters[i]!);
    if (v === undefined) missing++;
    else if (v) granted++;
  }
  const q = (n >> 1) + 1;
  if (granted >= q) return "won";
  if (granted + missing >= q) return "pending";
  return "lost";
}

/** A joint vote is won when both halves win and lost as soon as either loses. */
export function jointVoteResult(
  incoming: readonly NodeId[],
  outgoing: readonly NodeId[],
  votes: ReadonlyMap<NodeId, boolean>,
): VoteResult {
  const a = majorityVoteResult(incoming, votes);
  const b = majorityVoteResult(outgoing, votes);
  if (a === b) return a;
  if (a === "lost" || b === "lost") return "lost";
  return "pending";
}
