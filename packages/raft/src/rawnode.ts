import { Raft, type RaftConfig } from "./raft.ts";
import type {
  ConfChange,
  ConfState,
  Entry,
  HardState,
  Message,
  NodeId,
  ProposeResult,
  ReadState,
  RequestResult,
  Snapshot,
  SoftState,
  StateType,
} from "./types.ts";

/**
 * A batch of work the core hands to the application. Handle it in this order, then call
 * {@link RawNode.advance}:
 *
 * 0. `earlyMessages` (only with `sendBeforePersist`) may be sent at once, before or while
 *    step 1 runs: they promise nothing step 1 persists.
 * 1. Persist `snapshot` (if any), `entries` and `hardState` (if any), atomically or in that
 *    order, durably (fsync) when `mustSync` is true.
 * 2. Only then send `messages`: they may promise what step 1 persisted (a vote, an
 *    acknowledgement, a commit index that counts this node's copy).
 * 3. Apply `snapshot` to the state machine, then `committedEntries` in order. Call
 *    {@link RawNode.applyConfChange} for each `confChange` entry as it is applied.
 * 4. Serve `readStates` once the state machine has applied their index.
 */
export interface Ready {
  /** Set when the leader or the role changed. Volatile; no need to persist. */
  softState?: SoftState;
  /** Set when term, vote or commit changed: persist before sending `messages`. */
  hardState?: HardState;
  /** New log entries to persist, replacing any persisted entries at the same indexes. */
  entries: Entry[];
  /** A snapshot from the leader to persist and to install in the state machine. */
  snapshot?: Snapshot;
  /** Committed entries to apply, in order. They are already in storage or in `entries`. */
  committedEntries: Entry[];
  /** Messages to send after steps 1's persistence. Order between peers does not matter. */
  messages: Message[];
  /**
   * Messages that may go before or during step 1 (empty unless `sendBeforePersist`): the
   * leader's appends, heartbeats and snapshot chunks of a term already on disk. They carry no
   * promise about this Ready's writes: the leader counts its own copy of new entries towards
   * the commit only after `advance()`.
   */
  earlyMessages: Message[];
  /** Reads that may be served once `index` is applied. */
  readStates: ReadState[];
  /** Whether persisting needs an fsync (term, vote or entries changed). */
  mustSync: boolean;
}

/** A snapshot of the node's state for monitoring and tests. */
export interface Status {
  id: NodeId;
  term: number;
  vote: NodeId;
  commit: number;
  applied: number;
  lastIndex: number;
  state: StateType;
  leaderId: NodeId;
  leadTransferee: NodeId;
  config: ConfState;
  /** Per-peer replication state; only on the leader. */
  progress: Record<number, { match: number; next: number; state: string }>;
}

/**
 * The public, single-threaded API of one Raft node. It never does I/O and never reads a clock:
 * call `tick()` on a timer, `step()` with every message received, and drain the work with
 * `hasReady()` / `ready()` / `advance()`.
 */
export class RawNode {
  /** The state machine itself. Internal: for simulators and tests that inspect it. */
  readonly raft: Raft;
  private prevSoft: SoftState;
  private prevHard: HardState;
  private pending: Ready | undefined = undefined;

  /** Creates a node from the state in `config.storage` (empty for a new node, or a restart). */
  constructor(config: RaftConfig) {
    this.raft = new Raft(config);
    this.prevSoft = this.raft.softState();
    this.prevHard = this.raft.hardState();
  }

  /** Advances logical time by one tick (election and heartbeat timeouts count ticks). */
  tick(): void {
    this.raft.tick();
  }

  /** Starts an election now (with a pre-vote if enabled) instead of waiting for the timeout. */
  campaign(): void {
    this.raft.startElection();
  }

  /**
   * Proposes `data` for the log. On the leader it is appended (not yet committed) and the result
   * carries its index and term: it is committed when a committed entry at that index has that
   * term. Elsewhere nothing is appended and the result names the known leader. Proposals made
   * before the next `ready()` are sent to followers together (batching).
   */
  propose(data: Uint8Array): ProposeResult {
    return this.raft.propose(data);
  }

  /**
   * Proposes a membership change (leader only; one at a time). Apply it with
   * {@link applyConfChange} when its entry is committed.
   */
  proposeConfChange(cc: ConfChange): ProposeResult {
    return this.raft.proposeConfChange(cc);
  }

  /** Applies a committed `confChange` entry's change; returns the new membership. */
  applyConfChange(cc: ConfChange): ConfState {
    return this.raft.applyConfChange(cc);
  }

  /** Feeds a message from a peer. Messages for another node or from an old term are ignored. */
  step(message: Message): void {
    this.raft.step(message);
  }

  /**
   * Requests a linearizable read identified by `context` (unique per request). When leadership
   * is confirmed a {@link ReadState} with that context arrives in a Ready; serve the read once
   * the state machine has applied its index. A follower forwards the request to the leader.
   * Requests can be lost (leader change, dropped message): retry on a timeout.
   */
  readIndex(context: string): RequestResult {
    return this.raft.readIndex(context);
  }

  /**
   * Asks the leader to hand leadership to `to`: it catches `to` up, then tells it to campaign.
   * Proposals are refused with reason "transferring" until it completes or an election timeout
   * passes.
   */
  transferLeadership(to: NodeId): RequestResult {
    return this.raft.transferLeadership(to);
  }

  /**
   * With `lazyCommit`: whether this leader holds back a commit index from a follower, which
   * {@link bumpCommit} would send.
   */
  owesCommit(): boolean {
    return this.raft.owesCommit();
  }

  /** With `lazyCommit`: sends each follower the commit index held back from it (if leading). */
  bumpCommit(): void {
    this.raft.bumpCommit();
  }

  /** Tells the leader a message to `id` could not be delivered, so it stops pipelining to it. */
  reportUnreachable(id: NodeId): void {
    this.raft.reportUnreachable(id);
  }

  /** Whether `ready()` has anything to do. False while a Ready awaits `advance()`. */
  hasReady(): boolean {
    if (this.pending !== undefined) return false;
    const r = this.raft;
    // No flush here: proposals keep batching until ready() is called.
    if (r.msgs.length > 0 || r.needsBroadcast) return true;
    const u = r.log.unstable;
    if (u.entries.length > 0 || u.snapshot !== undefined) return true;
    if (r.log.hasNextCommittedEntries() || r.readStates.length > 0) return true;
    if (r.lead !== this.prevSoft.leaderId || r.state !== this.prevSoft.state) return true;
    const h = this.prevHard;
    return r.term !== h.term || r.vote !== h.vote || r.log.committed !== h.commit;
  }

  /**
   * Returns the pending work. Must be followed by `advance()` before the next `ready()`;
   * `tick`, `step` and the requests may be called in between (their output goes to the next
   * Ready).
   */
  ready(): Ready {
    if (this.pending !== undefined) throw new Error("ready(): advance() the previous Ready first");
    const r = this.raft;
    r.flush();
    const log = r.log;
    const h = this.prevHard;
    const rd: Ready = {
      entries: log.unstable.share(),
      committedEntries: log.nextCommittedEntries(),
      messages: r.msgs,
      earlyMessages: [],
      readStates: r.readStates,
      mustSync: false,
    };
    if (r.sendBeforePersist) splitEarly(rd, h.term);
    r.msgs = [];
    if (r.readStates.length > 0) r.readStates = [];
    if (log.unstable.snapshot !== undefined) rd.snapshot = log.unstable.snapshot;
    if (r.lead !== this.prevSoft.leaderId || r.state !== this.prevSoft.state)
      rd.softState = r.softState();
    if (r.term !== h.term || r.vote !== h.vote || log.committed !== h.commit)
      rd.hardState = r.hardState();
    rd.mustSync = rd.entries.length > 0 || r.term !== h.term || r.vote !== h.vote;
    this.pending = rd;
    return rd;
  }

  /**
   * Acknowledges the last Ready: its entries, hard state and snapshot are persisted, its
   * messages sent (or handed to the transport) and its committed entries applied.
   */
  advance(): void {
    const rd = this.pending;
    if (rd === undefined) throw new Error("advance(): no Ready to acknowledge");
    this.pending = undefined;
    const r = this.raft;
    if (rd.softState !== undefined) this.prevSoft = rd.softState;
    if (rd.hardState !== undefined) this.prevHard = rd.hardState;
    if (rd.snapshot !== undefined) r.appliedSnapshot(rd.snapshot.metadata.index);
    const n = rd.entries.length;
    if (n > 0) {
      const last = rd.entries[n - 1]!;
      r.log.unstable.stableTo(last.index, last.term);
      r.persisted(last.index, last.term);
    }
    const c = rd.committedEntries.length;
    if (c > 0) {
      r.appliedTo(rd.committedEntries[c - 1]!.index);
      r.appliedEntries(rd.committedEntries);
    }
  }

  /** The node's current state. */
  status(): Status {
    const r = this.raft;
    const progress: Status["progress"] = {};
    if (r.state === "leader")
      for (const [id, pr] of r.progress)
        progress[id] = { match: pr.match, next: pr.next, state: pr.state };
    return {
      id: r.id,
      term: r.term,
      vote: r.vote,
      commit: r.log.committed,
      applied: r.log.applied,
      lastIndex: r.log.lastIndex(),
      state: r.state,
      leaderId: r.lead,
      leadTransferee: r.leadTransferee,
      config: r.confState(),
      progress,
    };
  }
}

/**
 * Moves the leader's replication traffic of the persisted term `persistedTerm` to
 * `earlyMessages`. An append, heartbeat or snapshot chunk promises nothing about the sender's
 * disk: its entries are the leader's own proposals (Raft thesis 10.2.1), its commit index counts
 * only copies already durable, and its term was made durable when the leader voted for itself.
 * A message of a term not yet on disk (a single voter that just elected itself) still waits.
 */
function splitEarly(rd: Ready, persistedTerm: number): void {
  const late: Message[] = [];
  for (const m of rd.messages) {
    const leaderTraffic = m.type === "app" || m.type === "heartbeat" || m.type === "snap";
    if (leaderTraffic && m.term === persistedTerm) rd.earlyMessages.push(m);
    else late.push(m);
  }
  rd.messages = late;
}
