import { type Random, seededRandom } from "@quartet/determinism";
import {
  applyConfChange as applyToConfig,
  encodeConfChange,
  isJoint,
  type MembershipConfig,
  members,
} from "./confchange.ts";
import { RaftLog } from "./log.ts";
import { Progress } from "./progress.ts";
import { jointCommitted, jointVoteResult, type VoteResult } from "./quorum.ts";
import { ReadOnly } from "./read-only.ts";
import { entryBytes, type Storage, UNAVAILABLE } from "./storage.ts";
import type {
  AppendMessage,
  AppendResponseMessage,
  ConfChange,
  ConfState,
  Entry,
  EntryType,
  HardState,
  HeartbeatMessage,
  HeartbeatResponseMessage,
  Message,
  NodeId,
  ProposeResult,
  ReadState,
  RefusalReason,
  RequestResult,
  Snapshot,
  SnapshotMessage,
  SnapshotResponseMessage,
  SoftState,
  StateType,
  VoteMessage,
  VoteResponseMessage,
} from "./types.ts";

/**
 * Deliberately broken rules, for tests that prove the simulator's safety checks catch real
 * bugs. TEST-ONLY: every one of them makes Raft unsafe. Never set them in production.
 */
export interface UnsafeTestingFaults {
  /** The leader commits any index stored on a quorum, even one from an earlier term (Fig. 8). */
  commitPreviousTermByCounting?: boolean;
  /** Voters grant votes without the election restriction (candidate's log up to date). */
  grantVoteToStaleLog?: boolean;
  /** Followers drop everything after the append's previous entry, even entries that match. */
  truncateMatchingEntries?: boolean;
}

/** How a leader serves ReadIndex requests. */
export type ReadOnlyOption = "safe" | "leaseBased";

/** Configuration of one Raft node. */
export interface RaftConfig {
  /** This node's id (> 0). */
  id: NodeId;
  /** Where the persisted log, hard state and snapshot are read from. */
  storage: Storage;
  /** Ticks without hearing from a leader before campaigning (randomized in [n, 2n)). Default 10. */
  electionTick?: number;
  /** Ticks between leader heartbeats. Must be less than electionTick. Default 1. */
  heartbeatTick?: number;
  /** The last index the application applied before a restart (default: the snapshot index). */
  applied?: number;
  /** Max payload bytes per append message (always at least one entry). Default 1 MiB. */
  maxSizePerMsg?: number;
  /** Max appends in flight to one follower (pipelining window). Default 256. */
  maxInflightMsgs?: number;
  /** Max payload bytes in flight to one follower; 0 = no byte limit. Default 0. */
  maxInflightBytes?: number;
  /**
   * Max payload bytes the leader holds appended but not yet committed and applied; a proposal
   * beyond it is refused ("uncommitted-limit") until the application applies some. A leader
   * cut off from its quorum then stops growing its log. One proposal is always taken when none
   * is pending, whatever its size. 0 = no limit. Default 64 MiB.
   */
  maxUncommittedBytes?: number;
  /** Snapshot bytes per `snap` message. Default 1 MiB. */
  maxSnapshotChunkBytes?: number;
  /**
   * Snapshot chunks sent to one follower before its acknowledgement of the first (the
   * transfer's window). Default 8.
   */
  maxSnapshotChunksInFlight?: number;
  /** Run a pre-election so a rejoining partitioned node can't disrupt the cluster. Default true. */
  preVote?: boolean;
  /** A leader steps down when a quorum was silent for an election timeout. Default true. */
  checkQuorum?: boolean;
  /**
   * "safe" (default): every read is confirmed by a heartbeat round. "leaseBased": while its
   * lease holds (a quorum acknowledged a heartbeat sent less than an election timeout ago) the
   * leader answers at once, otherwise it falls back to a heartbeat round. Requires checkQuorum
   * and assumes every node's tick runs at the same rate (bounded clock drift).
   */
  readOnlyOption?: ReadOnlyOption;
  /**
   * Let the leader's appends, heartbeats and snapshot chunks leave while its own disk write of
   * the same entries runs (Raft thesis 10.2.1, as etcd does): they come out of a Ready in
   * `earlyMessages`, which may be sent before or during the persist step. The leader then
   * counts its own copy of an entry towards the commit quorum only once `advance()` reports it
   * durable (otherwise it counts it at once, since its messages wait for the persist step).
   * Default false.
   */
  sendBeforePersist?: boolean;
  /**
   * A leader's append that would carry nothing but a higher commit index is not sent: the next
   * append or heartbeat to that follower carries the index, or `bumpCommit()` sends it (the
   * application calls it when nothing else has gone out for a while). A follower needs the
   * index only to apply, which nothing on the write path waits for, and under load the next
   * append is seldom far off: a closed loop of writes sends half the messages. Default false
   * (the index goes at once, as etcd's raft sends it).
   */
  lazyCommit?: boolean;
  /** Source of election-timeout jitter. Default: `seededRandom(id)` (see `@quartet/determinism`). */
  rng?: Random;
  /** TEST-ONLY broken rules; see {@link UnsafeTestingFaults}. */
  unsafeTestingFaults?: UnsafeTestingFaults;
}

type CampaignType = "preElection" | "election" | "transfer";

interface SnapshotReceive {
  from: NodeId;
  term: number;
  index: number;
  snapTerm: number;
  total: number;
  received: number;
  chunks: Uint8Array[];
  /** Chunks that arrived ahead of a missing one, by offset, until the gap is filled. */
  ahead: Map<number, Uint8Array>;
}

const EMPTY_DATA = new Uint8Array(0);

function refuse(reason: RefusalReason, leaderId: NodeId, message: string) {
  return { ok: false as const, reason, leaderId, message };
}

/**
 * The Raft state machine. Pure: it changes only through `tick`, `step` and the local requests,
 * and its output is the message queue, read states and log it exposes to {@link RawNode}.
 * Use RawNode; this class is exported for simulators and tests that inspect internals.
 */
export class Raft {
  /** This node's id. */
  readonly id: NodeId;
  /** The current term. */
  term = 0;
  /** Whom this node voted for in `term` (0: nobody). */
  vote: NodeId = 0;
  /** The log: persisted entries, the unstable tail, commit and apply positions. */
  readonly log: RaftLog;
  /** The current role. */
  state: StateType = "follower";
  /** The leader this node follows in `term` (0: unknown). */
  lead: NodeId = 0;
  /** The membership as of the last applied conf change (or restored snapshot). */
  config: MembershipConfig;
  /** Per-member replication state; meaningful on the leader. */
  readonly progress = new Map<NodeId, Progress>();
  /** Outgoing messages, handed out (and cleared) by RawNode.ready(). */
  msgs: Message[] = [];
  /** Reads confirmed since the last Ready. */
  readStates: ReadState[] = [];
  /** The node leadership is being transferred to (0: none). */
  leadTransferee: NodeId = 0;
  /** Index of the latest conf change the leader appended; a new one waits until it's applied. */
  pendingConfIndex = 0;

  private readonly votes = new Map<NodeId, boolean>();
  private readOnly = new ReadOnly();
  private pendingReadIndex: { context: string; from: NodeId }[] = [];
  private electionElapsed = 0;
  private heartbeatElapsed = 0;
  private randomizedElectionTimeout = 0;
  /** Appends or a commit advance are waiting for flush(). */
  needsBroadcast = false;
  /** Ticks since this node became leader; the clock of lease-based reads. */
  private leaderTicks = 0;
  /** Set once this leader asked a peer to take over: its lease can no longer be trusted. */
  private leaseRevoked = false;
  /**
   * With lease-based reads, a restarted node may have promised a leader not to vote for an
   * election timeout before it crashed; it keeps that promise by honoring an unknown lease.
   */
  private restartLease: boolean;
  private readonly leaseScratch = new Map<NodeId, { match: number }>();
  private snapReceive: SnapshotReceive | undefined = undefined;
  private readonly scratch: number[] = [];
  private readonly active = new Map<NodeId, boolean>();

  private readonly electionTimeout: number;
  private readonly heartbeatTimeout: number;
  private readonly maxSizePerMsg: number;
  private readonly maxInflight: number;
  private readonly maxInflightBytes: number;
  private readonly maxUncommittedBytes: number;
  /**
   * Payload bytes this leader appended in its term that the application has not applied yet:
   * what maxUncommittedBytes bounds. Entries of earlier terms are not counted, so applying
   * them may take off more than was added; it stops at 0.
   */
  private uncommittedBytes = 0;
  private readonly maxSnapshotChunk: number;
  private readonly maxSnapshotChunksInFlight: number;
  private readonly preVote: boolean;
  private readonly checkQuorum: boolean;
  private readonly readOnlyOption: ReadOnlyOption;
  /** See RaftConfig.sendBeforePersist. */
  readonly sendBeforePersist: boolean;
  /** See RaftConfig.lazyCommit. */
  readonly lazyCommit: boolean;
  private readonly rng: Random;
  private readonly faults: UnsafeTestingFaults;

  constructor(c: RaftConfig) {
    if (!Number.isInteger(c.id) || c.id <= 0) throw new Error(`invalid node id ${c.id}`);
    this.id = c.id;
    this.electionTimeout = c.electionTick ?? 10;
    this.heartbeatTimeout = c.heartbeatTick ?? 1;
    if (this.heartbeatTimeout < 1) throw new Error("heartbeatTick must be at least 1");
    if (this.electionTimeout <= this.heartbeatTimeout)
      throw new Error("electionTick must be greater than heartbeatTick");
    this.maxSizePerMsg = c.maxSizePerMsg ?? 1024 * 1024;
    this.maxInflight = c.maxInflightMsgs ?? 256;
    if (this.maxInflight < 1) throw new Error("maxInflightMsgs must be at least 1");
    this.maxInflightBytes = c.maxInflightBytes ?? 0;
    this.maxUncommittedBytes = c.maxUncommittedBytes ?? 64 * 1024 * 1024;
    if (!Number.isInteger(this.maxUncommittedBytes) || this.maxUncommittedBytes < 0)
      throw new Error("maxUncommittedBytes must be a whole number of bytes, 0 for no limit");
    this.maxSnapshotChunk = c.maxSnapshotChunkBytes ?? 1024 * 1024;
    if (this.maxSnapshotChunk < 1) throw new Error("maxSnapshotChunkBytes must be at least 1");
    this.maxSnapshotChunksInFlight = c.maxSnapshotChunksInFlight ?? 8;
    if (!Number.isInteger(this.maxSnapshotChunksInFlight) || this.maxSnapshotChunksInFlight < 1)
      throw new Error("maxSnapshotChunksInFlight must be a whole number, at least 1");
    this.preVote = c.preVote ?? true;
    this.checkQuorum = c.checkQuorum ?? true;
    this.readOnlyOption = c.readOnlyOption ?? "safe";
    this.sendBeforePersist = c.sendBeforePersist ?? false;
    this.lazyCommit = c.lazyCommit ?? false;
    if (this.readOnlyOption === "leaseBased" && !this.checkQuorum)
      throw new Error("readOnlyOption 'leaseBased' requires checkQuorum");
    this.rng = c.rng ?? seededRandom(c.id);
    this.faults = c.unsafeTestingFaults ?? {};

    this.restartLease = this.readOnlyOption === "leaseBased";
    this.log = new RaftLog(c.storage);
    const { hardState, confState } = c.storage.initialState();
    this.config = copyConfState(confState);
    this.rebuildProgress();
    if (hardState.term !== 0 || hardState.vote !== 0 || hardState.commit !== 0) {
      if (hardState.commit < this.log.committed || hardState.commit > this.log.lastIndex())
        throw new Error(
          `hard state commit ${hardState.commit} outside [${this.log.committed}, ${this.log.lastIndex()}]`,
        );
      this.log.committed = hardState.commit;
      this.term = hardState.term;
      this.vote = hardState.vote;
    }
    if (c.applied !== undefined && c.applied > 0) this.log.appliedTo(c.applied);
    this.becomeFollower(this.term, 0);
  }

  /** The volatile state reported in a Ready. */
  softState(): SoftState {
    return { leaderId: this.lead, state: this.state };
  }

  /** The state that must be persisted. */
  hardState(): HardState {
    return { term: this.term, vote: this.vote, commit: this.log.committed };
  }

  /** A copy of the current membership. */
  confState(): ConfState {
    return copyConfState(this.config);
  }

  /** Whether this node may campaign: a voter, with no snapshot waiting to be persisted. */
  promotable(): boolean {
    const pr = this.progress.get(this.id);
    return pr !== undefined && !pr.isLearner && this.log.unstable.snapshot === undefined;
  }

  // ---- time ----

  /** Advances logical time by one tick. */
  tick(): void {
    if (this.state === "leader") this.tickHeartbeat();
    else this.tickElection();
  }

  private tickElection(): void {
    this.electionElapsed++;
    if (this.electionElapsed >= this.electionTimeout) this.restartLease = false;
    if (this.promotable() && this.electionElapsed >= this.randomizedElectionTimeout) {
      this.electionElapsed = 0;
      this.startElection();
    }
  }

  private tickHeartbeat(): void {
    this.leaderTicks++;
    this.heartbeatElapsed++;
    this.electionElapsed++;
    if (this.electionElapsed >= this.electionTimeout) {
      this.electionElapsed = 0;
      if (this.checkQuorum) {
        if (!this.quorumActive()) {
          this.becomeFollower(this.term, 0);
          return;
        }
        for (const [id, pr] of this.progress) if (id !== this.id) pr.recentActive = false;
      }
      // A transfer that did not finish within an election timeout is abandoned.
      if (this.leadTransferee !== 0) this.abortLeaderTransfer();
    }
    if (this.heartbeatElapsed >= this.heartbeatTimeout) {
      this.heartbeatElapsed = 0;
      this.bcastHeartbeat(this.readOnly.lastPendingContext());
    }
  }

  // ---- role changes ----

  private reset(term: number): void {
    if (this.term !== term) {
      this.term = term;
      this.vote = 0;
    }
    this.lead = 0;
    this.electionElapsed = 0;
    this.heartbeatElapsed = 0;
    this.randomizedElectionTimeout =
      this.electionTimeout + Math.floor(this.rng() * this.electionTimeout);
    this.abortLeaderTransfer();
    this.votes.clear();
    const last = this.log.lastIndex();
    for (const [id, pr] of this.progress) {
      pr.reset(last + 1);
      if (id === this.id) pr.match = this.ownCountedIndex();
    }
    this.pendingConfIndex = 0;
    this.uncommittedBytes = 0;
    this.leaderTicks = 0;
    this.leaseRevoked = false;
    this.readOnly = new ReadOnly();
    this.pendingReadIndex = [];
    this.needsBroadcast = false;
  }

  /** Steps down to follower of `lead` (0: unknown) in `term`. */
  becomeFollower(term: number, lead: NodeId): void {
    this.reset(term);
    this.lead = lead;
    this.state = "follower";
  }

  private becomeCandidate(): void {
    if (this.state === "leader") throw new Error("invalid transition leader -> candidate");
    this.reset(this.term + 1);
    this.vote = this.id;
    this.state = "candidate";
  }

  private becomePreCandidate(): void {
    if (this.state === "leader") throw new Error("invalid transition leader -> preCandidate");
    // Neither the term nor the vote changes: a pre-election only asks whether one would win.
    this.votes.clear();
    this.lead = 0;
    this.state = "preCandidate";
  }

  private becomeLeader(): void {
    if (this.state === "follower") throw new Error("invalid transition follower -> leader");
    this.reset(this.term);
    this.lead = this.id;
    this.state = "leader";
    const self = this.progress.get(this.id);
    if (self !== undefined) {
      self.becomeReplicate();
      self.recentActive = true;
    }
    // Any conf change still in the log may be uncommitted: wait until everything is applied.
    this.pendingConfIndex = this.log.lastIndex();
    // An entry of the new term lets earlier-term entries commit (the leader can only count
    // replicas of its own term's entries) and confirms leadership for reads.
    this.appendEntry("normal", EMPTY_DATA);
  }

  /** Starts an election now (a pre-election first if PreVote is on), if this node may. */
  startElection(): void {
    this.hup(this.preVote ? "preElection" : "election");
  }

  private hup(t: CampaignType): void {
    if (this.state === "leader") return;
    if (!this.promotable()) return;
    // A committed but unapplied conf change could make the election count the wrong voters.
    if (this.hasUnappliedConfChanges()) return;
    this.campaign(t);
  }

  private hasUnappliedConfChanges(): boolean {
    const log = this.log;
    if (log.applied >= log.committed) return false;
    const lo = Math.max(log.applied + 1, log.firstIndex());
    const ents = log.slice(lo, log.committed + 1, Number.POSITIVE_INFINITY);
    for (const e of ents) if (e.type === "confChange") return true;
    return false;
  }

  private campaign(t: CampaignType): void {
    let term: number;
    let type: "vote" | "preVote";
    if (t === "preElection") {
      this.becomePreCandidate();
      type = "preVote";
      term = this.term + 1;
    } else {
      this.becomeCandidate();
      type = "vote";
      term = this.term;
    }
    if (this.poll(this.id, true) === "won") {
      // A single-voter configuration wins at once.
      if (t === "preElection") this.campaign("election");
      else this.becomeLeader();
      return;
    }
    const index = this.log.lastIndex();
    const logTerm = this.log.lastTerm();
    for (const id of this.voterIds()) {
      if (id === this.id) continue;
      const m: VoteMessage = {
        type,
        from: this.id,
        to: id,
        term,
        index,
        logTerm,
        transfer: t === "transfer",
      };
      this.msgs.push(m);
    }
  }

  private voterIds(): NodeId[] {
    const ids = new Set<NodeId>([...this.config.voters, ...this.config.votersOutgoing]);
    return [...ids].sort((a, b) => a - b);
  }

  private poll(id: NodeId, granted: boolean): VoteResult {
    if (!this.votes.has(id)) this.votes.set(id, granted);
    return jointVoteResult(this.config.voters, this.config.votersOutgoing, this.votes);
  }

  private quorumActive(): boolean {
    const active = this.active;
    active.clear();
    for (const [id, pr] of this.progress) active.set(id, id === this.id || pr.recentActive);
    return jointVoteResult(this.config.voters, this.config.votersOutgoing, active) === "won";
  }

  // ---- messages ----

  /** Handles one message from a peer. */
  step(m: Message): void {
    if (m.to !== this.id || m.from === this.id) return;
    if (m.term > this.term) {
      if (m.type === "vote" || m.type === "preVote") {
        // Within the lease of a live leader, ignore disruptive candidates (CheckQuorum), unless
        // the leader itself asked for the election (transfer).
        const inLease =
          this.checkQuorum &&
          (this.lead !== 0 || this.restartLease) &&
          this.electionElapsed < this.electionTimeout;
        if (!m.transfer && inLease) return;
      }
      if (m.type === "preVote") {
        // A pre-vote never changes our term.
      } else if (m.type === "preVoteResp" && !m.reject) {
        // Granted pre-votes carry the future term; the term moves when the election starts.
      } else if (m.type === "app" || m.type === "heartbeat" || m.type === "snap") {
        this.becomeFollower(m.term, m.from);
      } else {
        this.becomeFollower(m.term, 0);
      }
    } else if (m.term < this.term) {
      if ((this.checkQuorum || this.preVote) && (m.type === "heartbeat" || m.type === "app")) {
        // A stale leader (e.g. back from a partition) learns the new term from our reply and
        // steps down; without it, CheckQuorum/PreVote could leave it stuck forever.
        this.sendAppResp(m.from, 0, false, 0, 0);
      } else if (m.type === "preVote") {
        const r: VoteResponseMessage = {
          type: "preVoteResp",
          from: this.id,
          to: m.from,
          term: this.term,
          reject: true,
        };
        this.msgs.push(r);
      }
      return;
    }

    if (m.type === "vote" || m.type === "preVote") {
      this.handleVote(m);
      return;
    }
    switch (this.state) {
      case "leader":
        this.stepLeader(m);
        break;
      case "candidate":
      case "preCandidate":
        this.stepCandidate(m);
        break;
      default:
        this.stepFollower(m);
    }
  }

  private handleVote(m: VoteMessage): void {
    const canVote =
      this.vote === m.from ||
      (this.vote === 0 && this.lead === 0) ||
      (m.type === "preVote" && m.term > this.term);
    const upToDate =
      this.faults.grantVoteToStaleLog === true || this.log.isUpToDate(m.index, m.logTerm);
    const type = m.type === "vote" ? "voteResp" : "preVoteResp";
    if (canVote && upToDate) {
      const r: VoteResponseMessage = {
        type,
        from: this.id,
        to: m.from,
        term: m.term,
        reject: false,
      };
      this.msgs.push(r);
      if (m.type === "vote") {
        this.electionElapsed = 0;
        this.vote = m.from;
      }
    } else {
      const r: VoteResponseMessage = {
        type,
        from: this.id,
        to: m.from,
        term: this.term,
        reject: true,
      };
      this.msgs.push(r);
    }
  }

  private stepCandidate(m: Message): void {
    switch (m.type) {
      case "app":
        this.becomeFollower(m.term, m.from);
        this.handleAppend(m);
        break;
      case "heartbeat":
        this.becomeFollower(m.term, m.from);
        this.handleHeartbeat(m);
        break;
      case "snap":
        this.becomeFollower(m.term, m.from);
        this.handleSnapshotChunk(m);
        break;
      case "voteResp":
      case "preVoteResp": {
        // Only answers to the current kind of election count (a candidate may still receive
        // pre-vote answers from its pre-candidacy).
        const mine = this.state === "preCandidate" ? "preVoteResp" : "voteResp";
        if (m.type !== mine) return;
        const result = this.poll(m.from, !m.reject);
        if (result === "won") {
          if (this.state === "preCandidate") this.campaign("election");
          else this.becomeLeader();
        } else if (result === "lost") {
          this.becomeFollower(this.term, 0);
        }
        break;
      }
      default:
    }
  }

  private stepFollower(m: Message): void {
    switch (m.type) {
      case "app":
        this.electionElapsed = 0;
        this.lead = m.from;
        this.handleAppend(m);
        break;
      case "heartbeat":
        this.electionElapsed = 0;
        this.lead = m.from;
        this.handleHeartbeat(m);
        break;
      case "snap":
        this.electionElapsed = 0;
        this.lead = m.from;
        this.handleSnapshotChunk(m);
        break;
      case "timeoutNow":
        // Transfers skip the pre-vote: the leader asked for this election.
        this.hup("transfer");
        break;
      case "readIndexResp":
        this.readStates.push({ index: m.index, context: m.context });
        break;
      default:
    }
  }

  private stepLeader(m: Message): void {
    if (m.type === "readIndex") {
      if (this.progress.has(m.from)) this.handleReadIndex(m.context, m.from);
      return;
    }
    const pr = this.progress.get(m.from);
    if (pr === undefined) return;
    switch (m.type) {
      case "appResp":
        this.handleAppResp(m, pr);
        break;
      case "heartbeatResp":
        this.handleHeartbeatResp(m, pr);
        break;
      case "snapResp":
        this.handleSnapResp(m, pr);
        break;
      default:
    }
  }

  // ---- replication: follower side ----

  private sendAppResp(
    to: NodeId,
    index: number,
    reject: boolean,
    rejectHint: number,
    logTerm: number,
  ): void {
    const r: AppendResponseMessage = {
      type: "appResp",
      from: this.id,
      to,
      term: this.term,
      index,
      reject,
      rejectHint,
      logTerm,
    };
    this.msgs.push(r);
  }

  private handleAppend(m: AppendMessage): void {
    const log = this.log;
    if (this.faults.truncateMatchingEntries === true) {
      if (log.matchTerm(m.index, m.logTerm)) {
        // BROKEN (test-only): drop whatever follows prev, matching or not.
        if (m.entries.length > 0) log.append(m.entries, true);
        const lastNew = m.index + m.entries.length;
        log.commitTo(Math.min(m.commit, lastNew));
        this.sendAppResp(m.from, lastNew, false, 0, 0);
        return;
      }
    } else if (m.index < log.committed) {
      // Everything up to our commit index matches the leader already.
      this.sendAppResp(m.from, log.committed, false, 0, 0);
      return;
    }
    const lastNew = log.maybeAppend(m.index, m.logTerm, m.commit, m.entries);
    if (lastNew >= 0) {
      this.sendAppResp(m.from, lastNew, false, 0, 0);
      return;
    }
    // Hint where the logs may match: skip our whole tail of terms above the leader's prev term.
    const [hintIndex, hintTerm] = log.findConflictByTerm(
      Math.min(m.index, log.lastIndex()),
      m.logTerm,
    );
    this.sendAppResp(m.from, m.index, true, hintIndex, hintTerm);
  }

  private handleHeartbeat(m: HeartbeatMessage): void {
    this.log.commitTo(m.commit);
    const r: HeartbeatResponseMessage = {
      type: "heartbeatResp",
      from: this.id,
      to: m.from,
      term: this.term,
      context: m.context,
      sentAt: m.sentAt,
    };
    this.msgs.push(r);
  }

  private sendSnapResp(to: NodeId, index: number, offset: number): void {
    const r: SnapshotResponseMessage = {
      type: "snapResp",
      from: this.id,
      to,
      term: this.term,
      index,
      offset,
    };
    this.msgs.push(r);
  }

  private handleSnapshotChunk(m: SnapshotMessage): void {
    const md = m.metadata;
    if (md.index <= this.log.committed) {
      // Already have it (or something newer): tell the leader where we are.
      this.snapReceive = undefined;
      this.sendAppResp(m.from, this.log.committed, false, 0, 0);
      return;
    }
    let r = this.snapReceive;
    if (
      r === undefined ||
      r.from !== m.from ||
      r.term !== m.term ||
      r.index !== md.index ||
      r.snapTerm !== md.term
    ) {
      if (m.offset !== 0) {
        // We hold nothing of this snapshot: ask for it from the start.
        this.snapReceive = undefined;
        this.sendSnapResp(m.from, md.index, 0);
        return;
      }
      r = {
        from: m.from,
        term: m.term,
        index: md.index,
        snapTerm: md.term,
        total: m.totalBytes,
        received: 0,
        chunks: [],
        ahead: new Map(),
      };
      this.snapReceive = r;
    }
    if (m.offset === r.received && m.data.byteLength > 0) {
      r.chunks.push(m.data.slice());
      r.received += m.data.byteLength;
      for (let next = r.ahead.get(r.received); next !== undefined; next = r.ahead.get(r.received)) {
        r.ahead.delete(r.received);
        r.chunks.push(next);
        r.received += next.byteLength;
      }
    } else if (m.offset > r.received && m.offset + m.data.byteLength <= r.total) {
      // Several chunks are in flight: keep one that overtook a lost or late one (at most the
      // snapshot's size in all), so only the missing chunk needs sending again.
      r.ahead.set(m.offset, m.data.slice());
    }
    if (r.received < r.total) {
      this.sendSnapResp(m.from, md.index, r.received);
      return;
    }
    this.snapReceive = undefined;
    const data = new Uint8Array(r.total);
    let at = 0;
    for (const c of r.chunks) {
      data.set(c, at);
      at += c.byteLength;
    }
    const restored = this.restore({ metadata: md, data });
    this.sendAppResp(m.from, restored ? this.log.lastIndex() : this.log.committed, false, 0, 0);
  }

  /** Installs a snapshot received from the leader. Returns false if it was not needed. */
  private restore(s: Snapshot): boolean {
    const md = s.metadata;
    if (md.index <= this.log.committed) return false;
    if (this.log.matchTerm(md.index, md.term)) {
      // Our log already has the snapshot's last entry: just fast-forward the commit index.
      this.log.commitTo(md.index);
      return false;
    }
    this.log.restore(s);
    this.config = copyConfState(md.confState);
    this.rebuildProgress();
    return true;
  }

  // ---- replication: leader side ----

  /** Appends a new entry of the current term to the leader's log. */
  private appendEntry(type: EntryType, data: Uint8Array): Entry {
    const e: Entry = { term: this.term, index: this.log.lastIndex() + 1, type, data };
    this.log.appendOne(e);
    this.uncommittedBytes += data.length;
    // Without sendBeforePersist the leader's own copy counts towards the quorum at once: it is
    // persisted before any message carrying it (or a commit index covering it) leaves the node
    // (see README, the contract). With it, the copy counts once persisted (see persisted()).
    if (!this.sendBeforePersist) this.progress.get(this.id)?.maybeUpdate(e.index);
    this.needsBroadcast = true;
    return e;
  }

  /**
   * The log index this node's own copy counts up to in the commit quorum: the last index, or,
   * with sendBeforePersist, the last one already durable (the unstable tail is not).
   */
  private ownCountedIndex(): number {
    const u = this.log.unstable;
    if (!this.sendBeforePersist || u.entries.length === 0) return this.log.lastIndex();
    return u.offset - 1;
  }

  /**
   * The application made entries up to `index` (of `term`) durable. With sendBeforePersist a
   * leader now counts its own copy of them, which may commit them.
   */
  persisted(index: number, term: number): void {
    if (!this.sendBeforePersist || this.state !== "leader") return;
    if (this.log.term(index) !== term) return;
    if (this.progress.get(this.id)?.maybeUpdate(index)) this.maybeCommit();
  }

  private committedIndex(): number {
    return jointCommitted(
      this.config.voters,
      this.config.votersOutgoing,
      this.progress,
      this.scratch,
    );
  }

  /** Advances the commit index to what a quorum stores. Only for leaders. */
  private maybeCommit(): boolean {
    const mci = this.committedIndex();
    let advanced: boolean;
    if (this.faults.commitPreviousTermByCounting === true) {
      // BROKEN (test-only): Figure 8 shows why an old-term entry can't be committed this way.
      advanced = mci > this.log.committed && mci <= this.log.lastIndex();
      if (advanced) this.log.commitTo(mci);
    } else {
      advanced = this.log.maybeCommit(mci, this.term);
    }
    if (advanced) {
      this.needsBroadcast = true;
      this.releasePendingReadIndex();
    }
    return advanced;
  }

  /**
   * Sends what the leader owes its followers after appends or commit changes. Called by
   * RawNode before it hands out a Ready, so that proposals made in between share messages.
   */
  flush(): void {
    if (!this.needsBroadcast) return;
    if (this.state === "leader") this.maybeCommit();
    this.needsBroadcast = false;
    if (this.state !== "leader") return;
    for (const [id, pr] of this.progress) {
      if (id === this.id) continue;
      if (!this.maybeSendAppend(id, pr, !this.lazyCommit && this.canBumpCommit(pr))) continue;
      while (pr.state === "replicate" && this.maybeSendAppend(id, pr, false)) {}
    }
  }

  /**
   * Whether a follower could be sent a commit index it has not been sent (see lazyCommit). One
   * that has appends in flight, or a probe unanswered, is not counted: its answer brings the
   * next append, and heartbeats carry the index meanwhile.
   */
  owesCommit(): boolean {
    if (this.state !== "leader") return false;
    for (const [id, pr] of this.progress) if (id !== this.id && this.owesCommitTo(pr)) return true;
    return false;
  }

  /** Sends each follower the commit index it has not been sent (see lazyCommit). */
  bumpCommit(): void {
    if (this.state !== "leader") return;
    for (const [id, pr] of this.progress) {
      if (id !== this.id && this.owesCommitTo(pr)) this.maybeSendAppend(id, pr, true);
    }
  }

  private owesCommitTo(pr: Progress): boolean {
    if (pr.state === "snapshot" || !this.canBumpCommit(pr)) return false;
    return pr.state === "probe" ? !pr.probeSent : pr.inflights.size() === 0;
  }

  private canBumpCommit(pr: Progress): boolean {
    return Math.min(this.log.committed, pr.next - 1) > pr.sentCommit;
  }

  /**
   * Sends an append to `to` unless its flow control is paused; with `sendIfEmpty` false, only
   * if there are entries to send. Falls back to a snapshot if the entries were compacted.
   */
  private maybeSendAppend(to: NodeId, pr: Progress, sendIfEmpty: boolean): boolean {
    if (pr.state === "snapshot") return false;
    if (pr.state === "probe" && pr.probeSent) return false;
    const log = this.log;
    const last = log.lastIndex();
    const canSendEntries = pr.next <= last && (pr.state === "probe" || !pr.inflights.full());
    if (!canSendEntries) {
      if (!sendIfEmpty) return false;
      // In replicate state an empty append goes out only when no append is in flight: sent
      // behind unacknowledged ones it would point past what the follower holds, and if those
      // are merely late the follower rejects it and knocks the leader back to probing. A full
      // window pauses the follower (as etcd does) until acknowledgements open it; a lost
      // append is found by the heartbeats (handleHeartbeatResp).
      if (pr.state === "replicate") {
        if (pr.inflights.size() > 0) return false;
        if (pr.probeSent && !this.canBumpCommit(pr)) return false;
      }
    }
    const prevIndex = pr.next - 1;
    const prevTerm = log.term(prevIndex);
    if (prevTerm < 0) {
      if (prevTerm === UNAVAILABLE) {
        pr.becomeProbe();
        return false;
      }
      return this.sendSnapshot(to, pr);
    }
    const entries = canSendEntries ? log.slice(pr.next, last + 1, this.maxSizePerMsg) : [];
    let bytes = 0;
    if (this.maxInflightBytes > 0)
      for (let i = 0; i < entries.length; i++) bytes += entryBytes(entries[i]!);
    const m: AppendMessage = {
      type: "app",
      from: this.id,
      to,
      term: this.term,
      index: prevIndex,
      logTerm: prevTerm,
      entries,
      commit: log.committed,
    };
    this.msgs.push(m);
    if (pr.state === "replicate" && entries.length > 0 && pr.inflights.size() === 0)
      pr.inflightSince = this.leaderTicks;
    pr.sentEntries(entries.length, prevIndex + entries.length, bytes);
    pr.sentCommit = log.committed;
    return true;
  }

  private sendSnapshot(to: NodeId, pr: Progress): boolean {
    // Don't start a snapshot to a peer that may be down; CheckQuorum refreshes this flag.
    if (!pr.recentActive) return false;
    pr.becomeSnapshot(this.log.snapshot());
    this.sendSnapshotChunk(to, pr, 0);
    this.sendSnapshotWindow(to, pr);
    return true;
  }

  /** Sends the chunks after the last one sent, up to the transfer's window past the acked offset. */
  private sendSnapshotWindow(to: NodeId, pr: Progress): void {
    const total = pr.pendingSnapshot!.data.byteLength;
    const window = this.maxSnapshotChunk * this.maxSnapshotChunksInFlight;
    while (pr.snapshotSent < total && pr.snapshotSent - pr.snapshotOffset < window) {
      this.sendSnapshotChunk(to, pr, pr.snapshotSent);
    }
  }

  private sendSnapshotChunk(to: NodeId, pr: Progress, offset: number): void {
    const snap = pr.pendingSnapshot!;
    const total = snap.data.byteLength;
    const end = Math.min(total, offset + this.maxSnapshotChunk);
    if (end > pr.snapshotSent) pr.snapshotSent = end;
    const m: SnapshotMessage = {
      type: "snap",
      from: this.id,
      to,
      term: this.term,
      metadata: snap.metadata,
      offset,
      totalBytes: total,
      data: snap.data.subarray(offset, end),
    };
    this.msgs.push(m);
  }

  private handleAppResp(m: AppendResponseMessage, pr: Progress): void {
    pr.recentActive = true;
    const log = this.log;
    if (m.reject) {
      let nextProbe = m.rejectHint;
      if (m.logTerm > 0) nextProbe = log.findConflictByTerm(m.rejectHint, m.logTerm)[0];
      if (pr.maybeDecrTo(m.index, nextProbe)) {
        if (pr.state === "replicate") pr.becomeProbe();
        this.maybeSendAppend(m.from, pr, true);
      }
      return;
    }
    if (!(pr.maybeUpdate(m.index) || (pr.match === m.index && pr.state === "probe"))) return;
    if (pr.state === "probe") {
      pr.becomeReplicate();
    } else if (pr.state === "snapshot") {
      const caughtUp = pr.match + 1 >= log.firstIndex();
      if (caughtUp || pr.match >= pr.pendingSnapshot!.metadata.index) {
        pr.becomeProbe();
        if (caughtUp) pr.becomeReplicate();
      }
    } else {
      pr.inflights.freeLE(m.index);
      // What is still in flight may have left before now; counting it from now only makes
      // the loss check (handleHeartbeatResp) wait longer.
      pr.inflightSince = this.leaderTicks;
    }
    if (!this.maybeCommit() && !this.lazyCommit && this.canBumpCommit(pr)) {
      this.maybeSendAppend(m.from, pr, true);
    }
    // The window may have opened for several messages at once.
    while (this.maybeSendAppend(m.from, pr, false)) {
      if (pr.state !== "replicate") break;
    }
    if (m.from === this.leadTransferee && pr.match === log.lastIndex()) this.sendTimeoutNow(m.from);
  }

  private handleHeartbeatResp(m: HeartbeatResponseMessage, pr: Progress): void {
    pr.recentActive = true;
    if (m.sentAt > pr.leaseSentAt) pr.leaseSentAt = m.sentAt;
    pr.probeSent = false;
    if (pr.state === "snapshot") {
      // Retransmit the chunk the follower waits for (chunks may be lost); the ones after it
      // wait in the follower's buffer.
      const snap = pr.pendingSnapshot!;
      if (pr.snapshotOffset < snap.data.byteLength || snap.data.byteLength === 0)
        this.sendSnapshotChunk(m.from, pr, pr.snapshotOffset);
    } else {
      // The follower answers a heartbeat sent more than a heartbeat interval after an append
      // it has still not acknowledged: on a transport that keeps order that append was lost
      // (it would have been answered first); one round of grace covers a network that
      // reorders. Probe from what the follower has, which it never rejects.
      if (
        pr.state === "replicate" &&
        pr.inflights.size() > 0 &&
        m.sentAt > pr.inflightSince + this.heartbeatTimeout
      )
        pr.becomeProbe();
      if (pr.match < this.log.lastIndex() || pr.state === "probe")
        this.maybeSendAppend(m.from, pr, true);
    }
    if (m.context === "") return;
    const acks = this.readOnly.recvAck(m.from, m.context);
    if (acks === undefined) return;
    if (jointVoteResult(this.config.voters, this.config.votersOutgoing, acks) !== "won") return;
    for (const rs of this.readOnly.advance(m.context))
      this.respondRead(rs.index, rs.context, rs.from);
  }

  private handleSnapResp(m: SnapshotResponseMessage, pr: Progress): void {
    pr.recentActive = true;
    const snap = pr.pendingSnapshot;
    if (pr.state !== "snapshot" || snap === undefined || snap.metadata.index !== m.index) return;
    if (m.offset > pr.snapshotOffset || (m.offset === 0 && pr.snapshotOffset > 0)) {
      // Progress (or the follower starting over from 0): slide the window on.
      if (m.offset < pr.snapshotOffset) pr.snapshotSent = m.offset;
      pr.snapshotOffset = m.offset;
      pr.snapshotResent = -1;
      this.sendSnapshotWindow(m.from, pr);
    } else if (m.offset === pr.snapshotOffset && pr.snapshotSent > m.offset) {
      // The same offset again while later chunks are out: a later chunk arrived and this one
      // did not, so it was lost (or is late). Send it again once, without waiting for a
      // heartbeat; the heartbeat response retries it if this copy is lost too.
      if (pr.snapshotResent !== m.offset) {
        pr.snapshotResent = m.offset;
        this.sendSnapshotChunk(m.from, pr, m.offset);
      }
    }
  }

  private bcastHeartbeat(context: string): void {
    for (const [id, pr] of this.progress) {
      if (id === this.id) continue;
      const m: HeartbeatMessage = {
        type: "heartbeat",
        from: this.id,
        to: id,
        term: this.term,
        // Never tell a follower an index is committed before it is known to hold it.
        commit: Math.min(pr.match, this.log.committed),
        context,
        sentAt: this.leaderTicks,
      };
      this.msgs.push(m);
    }
  }

  // ---- local requests ----

  private refusal(): ProposeResult | undefined {
    if (this.state !== "leader") {
      return this.lead === 0
        ? refuse("no-leader", 0, `node ${this.id} knows no leader at term ${this.term}`)
        : refuse("not-leader", this.lead, `node ${this.id} is not the leader; try ${this.lead}`);
    }
    if (!this.progress.has(this.id))
      return refuse("removed", 0, `node ${this.id} was removed from the cluster`);
    if (this.leadTransferee !== 0)
      return refuse(
        "transferring",
        this.id,
        `leadership is being transferred to ${this.leadTransferee}; retry shortly`,
      );
    return undefined;
  }

  /** Refuses an entry of `payloadBytes` that would take the leader past maxUncommittedBytes. */
  private uncommittedRefusal(payloadBytes: number): ProposeResult | undefined {
    const pending = this.uncommittedBytes;
    if (
      this.maxUncommittedBytes > 0 &&
      pending > 0 &&
      pending + payloadBytes > this.maxUncommittedBytes
    )
      return refuse(
        "uncommitted-limit",
        this.id,
        `leader ${this.id} holds ${pending} bytes not yet applied and ${payloadBytes} more would pass maxUncommittedBytes (${this.maxUncommittedBytes}); retry once earlier proposals are applied`,
      );
    return undefined;
  }

  /** Appends `data` if this node is the leader; otherwise says why not and who leads. */
  propose(data: Uint8Array): ProposeResult {
    const no = this.refusal() ?? this.uncommittedRefusal(data.length);
    if (no !== undefined) return no;
    const e = this.appendEntry("normal", data);
    return { ok: true, index: e.index, term: e.term };
  }

  /** Appends a membership change if this node is the leader and none is pending. */
  proposeConfChange(cc: ConfChange): ProposeResult {
    const no = this.refusal();
    if (no !== undefined) return no;
    const data = encodeConfChange(cc);
    const full = this.uncommittedRefusal(data.length);
    if (full !== undefined) return full;
    if (this.pendingConfIndex > this.log.applied)
      return refuse(
        "conf-change-pending",
        this.id,
        `conf change at index ${this.pendingConfIndex} is not applied yet; retry after it is`,
      );
    const joint = isJoint(this.config);
    if (joint && cc.changes.length > 0)
      return refuse(
        "invalid-conf-change",
        this.id,
        "the configuration is joint: propose an empty ConfChange to leave it first",
      );
    if (!joint && cc.changes.length === 0)
      return refuse("invalid-conf-change", this.id, "the configuration is not joint");
    try {
      applyToConfig(this.config, cc);
    } catch (err) {
      return refuse("invalid-conf-change", this.id, (err as Error).message);
    }
    const e = this.appendEntry("confChange", data);
    this.pendingConfIndex = e.index;
    return { ok: true, index: e.index, term: e.term };
  }

  /** Applies a committed membership change; returns the new membership. */
  applyConfChange(cc: ConfChange): ConfState {
    this.config = applyToConfig(this.config, cc);
    this.rebuildProgress();
    const self = this.progress.get(this.id);
    if (this.state === "leader") {
      if (self === undefined || self.isLearner) {
        // A leader removed from the voters steps down; the others elect a new one.
        this.becomeFollower(this.term, 0);
      } else {
        // The quorum changed: commit may move, and new members need appends.
        this.needsBroadcast = true;
        if (this.leadTransferee !== 0 && !this.voterIds().includes(this.leadTransferee))
          this.abortLeaderTransfer();
      }
    }
    return this.confState();
  }

  /** The application applied entries up to `index`. */
  appliedTo(index: number): void {
    this.log.appliedTo(index);
    if (
      this.config.autoLeave &&
      this.state === "leader" &&
      index >= this.pendingConfIndex &&
      this.progress.has(this.id)
    ) {
      // Leave the joint configuration automatically once entering it is applied.
      const e = this.appendEntry("confChange", encodeConfChange({ changes: [] }));
      this.pendingConfIndex = e.index;
    }
  }

  /** The application applied these committed entries: their payload no longer counts. */
  appliedEntries(entries: readonly Entry[]): void {
    if (this.uncommittedBytes === 0) return;
    let bytes = 0;
    for (const e of entries) bytes += e.data.length;
    this.uncommittedBytes = Math.max(0, this.uncommittedBytes - bytes);
  }

  /** The application persisted the snapshot of a Ready. */
  appliedSnapshot(index: number): void {
    this.log.unstable.stableSnapTo(index);
    if (index > this.log.applied) this.log.applied = index;
  }

  /** Requests a linearizable read; the answer arrives later as a ReadState. */
  readIndex(context: string): RequestResult {
    if (this.state === "leader") {
      this.handleReadIndex(context, this.id);
      return { ok: true };
    }
    if (this.lead === 0 || this.state !== "follower")
      return refuse("no-leader", 0, `node ${this.id} knows no leader at term ${this.term}`);
    this.msgs.push({
      type: "readIndex",
      from: this.id,
      to: this.lead,
      term: this.term,
      context,
    });
    return { ok: true };
  }

  private committedEntryInCurrentTerm(): boolean {
    return this.log.term(this.log.committed) === this.term;
  }

  private handleReadIndex(context: string, from: NodeId): void {
    const c = this.config;
    if (c.votersOutgoing.length === 0 && c.voters.length === 1 && c.voters[0] === this.id) {
      this.respondRead(this.log.committed, context, from);
      return;
    }
    // Until an entry of this term commits, the leader may not know the latest commit index.
    if (!this.committedEntryInCurrentTerm()) {
      this.pendingReadIndex.push({ context, from });
      return;
    }
    this.serveReadIndex(context, from);
  }

  /**
   * Whether the leader's lease holds: a quorum acknowledged a heartbeat sent less than an
   * election timeout ago (minus two ticks for tick phase), so none of them can have voted for
   * another leader since. Assumes all nodes' ticks run at the same rate.
   */
  private leaseValid(): boolean {
    if (this.leaseRevoked) return false;
    const m = this.leaseScratch;
    m.clear();
    for (const [id, pr] of this.progress)
      m.set(id, { match: id === this.id ? this.leaderTicks : pr.leaseSentAt });
    const since = jointCommitted(this.config.voters, this.config.votersOutgoing, m, this.scratch);
    return this.leaderTicks - since < this.electionTimeout - 2;
  }

  private serveReadIndex(context: string, from: NodeId): void {
    if (this.readOnlyOption === "leaseBased" && this.leaseValid()) {
      this.respondRead(this.log.committed, context, from);
      return;
    }
    this.readOnly.add(this.log.committed, context, from);
    this.readOnly.recvAck(this.id, context);
    this.bcastHeartbeat(context);
  }

  private releasePendingReadIndex(): void {
    if (this.pendingReadIndex.length === 0 || !this.committedEntryInCurrentTerm()) return;
    const pending = this.pendingReadIndex;
    this.pendingReadIndex = [];
    for (const p of pending) this.serveReadIndex(p.context, p.from);
  }

  private respondRead(index: number, context: string, from: NodeId): void {
    if (from === this.id) {
      this.readStates.push({ index, context });
      return;
    }
    this.msgs.push({
      type: "readIndexResp",
      from: this.id,
      to: from,
      term: this.term,
      index,
      context,
    });
  }

  /** Hands leadership to `to` once its log is caught up. Leader only. */
  transferLeadership(to: NodeId): RequestResult {
    if (this.state !== "leader") {
      return this.lead === 0
        ? refuse("no-leader", 0, `node ${this.id} knows no leader at term ${this.term}`)
        : refuse("not-leader", this.lead, `node ${this.id} is not the leader; try ${this.lead}`);
    }
    const pr = this.progress.get(to);
    if (to === this.id || pr === undefined || pr.isLearner)
      return refuse("invalid-target", this.id, `node ${to} is not a voter other than the leader`);
    if (this.leadTransferee === to) return { ok: true };
    this.abortLeaderTransfer();
    // The transfer must finish within an election timeout.
    this.electionElapsed = 0;
    this.leadTransferee = to;
    if (pr.match === this.log.lastIndex()) this.sendTimeoutNow(to);
    else this.maybeSendAppend(to, pr, true);
    return { ok: true };
  }

  private sendTimeoutNow(to: NodeId): void {
    // The target will win without waiting for leases to expire.
    this.leaseRevoked = true;
    this.msgs.push({ type: "timeoutNow", from: this.id, to, term: this.term });
  }

  private abortLeaderTransfer(): void {
    this.leadTransferee = 0;
  }

  /** The leader heard nothing from `id` (transport error): fall back to probing. */
  reportUnreachable(id: NodeId): void {
    const pr = this.progress.get(id);
    if (this.state === "leader" && pr !== undefined && pr.state === "replicate") pr.becomeProbe();
  }

  private rebuildProgress(): void {
    const ids = members(this.config);
    const wanted = new Set(ids);
    for (const id of [...this.progress.keys()]) if (!wanted.has(id)) this.progress.delete(id);
    const next = this.log.lastIndex() + 1;
    for (const id of ids) {
      const learner = this.config.learners.includes(id);
      let pr = this.progress.get(id);
      if (pr === undefined) {
        pr = new Progress(next, learner, this.maxInflight, this.maxInflightBytes);
        // A new member gets a chance to answer before CheckQuorum counts it as silent.
        pr.recentActive = true;
        if (id === this.id) pr.match = this.ownCountedIndex();
        this.progress.set(id, pr);
      }
      pr.isLearner = learner;
    }
  }
}

function copyConfState(cs: ConfState): ConfState {
  const byId = (a: NodeId, b: NodeId) => a - b;
  return {
    voters: [...cs.voters].sort(byId),
    learners: [...cs.learners].sort(byId),
    votersOutgoing: [...(cs.votersOutgoing ?? [])].sort(byId),
    learnersNext: [...(cs.learnersNext ?? [])].sort(byId),
    autoLeave: cs.autoLeave ?? false,
  };
}
