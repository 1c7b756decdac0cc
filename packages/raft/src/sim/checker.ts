import type { Raft } from "../raft.ts";
import type { Entry, HardState, NodeId, ReadState } from "../types.ts";

/** A broken Raft guarantee, found by {@link SafetyChecker}. */
export class SafetyViolation extends Error {
  override name = "SafetyViolation";
}

interface NodeView {
  commit: number;
  persistedCommit: number;
  persistedTerm: number;
  persistedVote: NodeId;
  leaderTerm: number;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.byteLength !== b.byteLength) return false;
  for (let i = 0; i < a.byteLength; i++) if (a[i] !== b[i]) return false;
  return true;
}

/**
 * Checks Raft's safety properties as the simulator runs: it is told about every persisted
 * entry, hard state, applied entry and read, and inspects nodes after every step.
 *
 * - Election safety: at most one leader per term; a node votes at most once per term.
 * - Log matching: two logs with an entry of the same index and term agree on it and on all
 *   entries before it (checked inductively: same (index, term) => same data and previous term).
 * - Leader completeness: a new leader of term T holds every entry committed before term T.
 * - State machine safety: every committed (and applied) index holds the same entry everywhere.
 * - Commit monotonicity: a node's commit index never decreases while it runs, and the persisted
 *   one never decreases at all; a node's log always contains its committed prefix.
 * - Applied == committed prefix: nodes apply exactly the committed entries, in order (checked
 *   with a rolling hash of the applied sequence, also across snapshots).
 * - Linearizable reads: a read index is at least every commit index seen before the request.
 */
export class SafetyChecker {
  private readonly leaderOfTerm = new Map<number, NodeId>();
  private readonly committedTerm: number[] = [];
  private readonly committedData: (Uint8Array | undefined)[] = [];
  /** The term of the node that first reported the index committed. */
  private readonly commitTermOf: number[] = [];
  private readonly appliedHash: number[] = [];
  private readonly logEntries = new Map<number, { prevTerm: number; data: Uint8Array }>();
  private readonly nodes = new Map<NodeId, NodeView>();
  private readonly readFloor = new Map<string, number>();
  /** Highest commit index any node has reported. */
  maxCommit = 0;
  /** Number of stale-read checks passed; tests use it to prove reads were checked. */
  readsChecked = 0;

  /** Records the state every node starts from (the bootstrap snapshot). */
  recordInitialState(index: number, hash: number): void {
    this.appliedHash[index] = hash;
    if (index > this.maxCommit) this.maxCommit = index;
  }

  private view(id: NodeId): NodeView {
    let v = this.nodes.get(id);
    if (v === undefined) {
      v = { commit: 0, persistedCommit: 0, persistedTerm: 0, persistedVote: 0, leaderTerm: 0 };
      this.nodes.set(id, v);
    }
    return v;
  }

  private fail(msg: string): never {
    throw new SafetyViolation(msg);
  }

  /** Whether `index` is known committed with an entry of `term`. */
  isCommitted(index: number, term: number): boolean {
    return this.committedTerm[index] === term;
  }

  /** The node restarted: its in-memory commit index starts over from the persisted one. */
  onRestart(id: NodeId): void {
    const v = this.view(id);
    v.commit = 0;
    v.leaderTerm = 0;
  }

  /** Inspects a running node after a step. */
  checkNode(id: NodeId, r: Raft): void {
    const v = this.view(id);
    if (r.state === "leader") {
      const other = this.leaderOfTerm.get(r.term);
      if (other !== undefined && other !== id)
        this.fail(`election safety: nodes ${other} and ${id} are both leader of term ${r.term}`);
      if (other === undefined) this.leaderOfTerm.set(r.term, id);
      if (v.leaderTerm !== r.term) {
        v.leaderTerm = r.term;
        this.checkLeaderCompleteness(id, r);
      }
    }
    const log = r.log;
    const commit = log.committed;
    if (commit < v.commit) this.fail(`commit regressed on node ${id}: ${v.commit} -> ${commit}`);
    if (commit > log.lastIndex())
      this.fail(`node ${id} committed ${commit} but its log ends at ${log.lastIndex()}`);
    if (commit > v.commit) {
      const lo = Math.max(v.commit + 1, log.firstIndex());
      if (lo <= commit) {
        const ents = log.slice(lo, commit + 1, Number.POSITIVE_INFINITY);
        for (const e of ents) this.recordCommitted(id, e, r.term);
      }
      v.commit = commit;
      if (commit > this.maxCommit) this.maxCommit = commit;
    }
  }

  private recordCommitted(id: NodeId, e: Entry, term: number): void {
    const t = this.committedTerm[e.index];
    if (t === undefined) {
      this.committedTerm[e.index] = e.term;
      this.committedData[e.index] = e.data;
      this.commitTermOf[e.index] = term;
      return;
    }
    if (t !== e.term || !sameBytes(this.committedData[e.index]!, e.data))
      this.fail(
        `state machine safety: node ${id} committed index ${e.index} with term ${e.term}, ` +
          `but term ${t} was committed there before`,
      );
  }

  private checkLeaderCompleteness(id: NodeId, r: Raft): void {
    const log = r.log;
    const first = log.firstIndex();
    for (let i = first; i <= this.maxCommit; i++) {
      const t = this.committedTerm[i];
      if (t === undefined || this.commitTermOf[i]! >= r.term) continue;
      const have = log.term(i);
      if (have !== t)
        this.fail(
          `leader completeness: node ${id} leads term ${r.term} without committed entry ${i} ` +
            `(term ${t}); it has ${have < 0 ? "nothing" : `term ${have}`} there`,
        );
    }
  }

  /** Entries the node just persisted, with the term of the entry before the first one. */
  onPersist(id: NodeId, entries: readonly Entry[], prevTerm: number): void {
    let prev = prevTerm;
    for (const e of entries) {
      const key = e.index * 2 ** 20 + e.term;
      const seen = this.logEntries.get(key);
      if (seen === undefined) {
        this.logEntries.set(key, { prevTerm: prev, data: e.data });
      } else if (
        (prev >= 0 && seen.prevTerm >= 0 && seen.prevTerm !== prev) ||
        !sameBytes(seen.data, e.data)
      ) {
        this.fail(
          `log matching: node ${id} has entry (${e.index}, term ${e.term}) that differs from ` +
            "another node's entry at the same index and term, or follows a different entry",
        );
      }
      prev = e.term;
    }
  }

  /** The node persisted a hard state. */
  onHardState(id: NodeId, hs: HardState): void {
    const v = this.view(id);
    if (hs.commit < v.persistedCommit)
      this.fail(`persisted commit regressed on node ${id}: ${v.persistedCommit} -> ${hs.commit}`);
    if (hs.term < v.persistedTerm)
      this.fail(`persisted term regressed on node ${id}: ${v.persistedTerm} -> ${hs.term}`);
    if (hs.term === v.persistedTerm && v.persistedVote !== 0 && hs.vote !== v.persistedVote)
      this.fail(`node ${id} voted twice in term ${hs.term}: for ${v.persistedVote} and ${hs.vote}`);
    v.persistedCommit = hs.commit;
    v.persistedTerm = hs.term;
    v.persistedVote = hs.vote;
  }

  /** The node applied `e`; `hash` is its state machine's rolling hash afterwards. */
  onApply(id: NodeId, e: Entry, nodeCommit: number, hash: number): void {
    if (e.index > nodeCommit)
      this.fail(`node ${id} applied ${e.index} beyond its commit index ${nodeCommit}`);
    const t = this.committedTerm[e.index];
    if (t !== undefined && (t !== e.term || !sameBytes(this.committedData[e.index]!, e.data)))
      this.fail(
        `state machine safety: node ${id} applied (${e.index}, term ${e.term}) but ` +
          `(${e.index}, term ${t}) is committed`,
      );
    this.checkHash(id, e.index, hash);
  }

  /** The node's state machine now reflects a snapshot at `index` with rolling hash `hash`. */
  onRestore(id: NodeId, index: number, hash: number): void {
    this.checkHash(id, index, hash);
  }

  private checkHash(id: NodeId, index: number, hash: number): void {
    const h = this.appliedHash[index];
    if (h === undefined) this.appliedHash[index] = hash;
    else if (h !== hash)
      this.fail(
        `applied state diverged: node ${id}'s state after index ${index} differs from ` +
          "another node's (the applied entries are not the committed prefix)",
      );
  }

  /** A read was requested: it must observe everything committed so far. */
  onReadRequest(context: string): void {
    this.readFloor.set(context, this.maxCommit);
  }

  /** A node produced a read state. */
  onReadState(id: NodeId, rs: ReadState): void {
    const floor = this.readFloor.get(rs.context);
    if (floor === undefined) return;
    if (rs.index < floor)
      this.fail(
        `stale read: node ${id} answered read "${rs.context}" at index ${rs.index}, ` +
          `but ${floor} was committed before the read was requested`,
      );
    this.readsChecked++;
  }
}
