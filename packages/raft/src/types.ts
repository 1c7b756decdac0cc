// Plain data types shared by the core, the storage and the simulator. Everything here is a
// value that can be mapped 1:1 onto Protobuf by the service that puts Raft on the wire.

/** Node ids are positive integers; 0 means "nobody" (no vote, no known leader). */
export type NodeId = number;

/** The id that means "no node". */
export const NONE: NodeId = 0;

/** What an entry carries: application data, or an encoded {@link ConfChange}. */
export type EntryType = "normal" | "confChange";

/** One log entry. `index` and `term` are assigned by the leader that appended it. */
export interface Entry {
  term: number;
  index: number;
  type: EntryType;
  data: Uint8Array;
}

/**
 * The state that must be durable before any message of the same {@link Ready} is sent:
 * the current term, the vote cast in it, and the highest index known committed.
 */
export interface HardState {
  term: number;
  vote: NodeId;
  commit: number;
}

/**
 * A cluster membership. `votersOutgoing` is non-empty only in a joint configuration
 * (C_old,new); `learnersNext` holds voters of the outgoing half that become learners when the
 * joint configuration is left.
 */
export interface ConfState {
  voters: NodeId[];
  learners: NodeId[];
  votersOutgoing: NodeId[];
  learnersNext: NodeId[];
  autoLeave: boolean;
}

/** Identifies the log position a snapshot replaces and the membership at that position. */
export interface SnapshotMetadata {
  index: number;
  term: number;
  confState: ConfState;
}

/** The application state as of `metadata.index`, opaque to Raft. */
export interface Snapshot {
  metadata: SnapshotMetadata;
  data: Uint8Array;
}

/** One membership change inside a {@link ConfChange}. */
export interface ConfChangeSingle {
  type: "addNode" | "addLearner" | "removeNode";
  nodeId: NodeId;
}

/**
 * A membership change, proposed with `RawNode.proposeConfChange` and applied with
 * `RawNode.applyConfChange` once committed.
 *
 * - No changes: leave the current joint configuration.
 * - `transition: "auto"` (default): a single voter change is applied directly; several changes
 *   go through joint consensus and the leader leaves the joint configuration automatically.
 * - `"implicit"`: always joint, left automatically. `"explicit"`: always joint, left only when
 *   the application proposes an empty ConfChange.
 */
export interface ConfChange {
  changes: ConfChangeSingle[];
  transition?: "auto" | "implicit" | "explicit";
  /**
   * Opaque to Raft, carried in the entry for the application (etcd's ConfChange.Context):
   * e.g. the new member's address, so every member learns it when it applies the change.
   */
  context?: string;
}

/** The role of a node. */
export type StateType = "follower" | "candidate" | "preCandidate" | "leader";

interface MessageBase {
  from: NodeId;
  to: NodeId;
  term: number;
}

/** Leader -> follower: entries after (`index`, `logTerm`), plus the leader's commit index. */
export interface AppendMessage extends MessageBase {
  type: "app";
  index: number;
  logTerm: number;
  entries: Entry[];
  commit: number;
}

/**
 * Follower -> leader: `index` is the last index now matching the leader (accepted), or the
 * rejected `index` with a hint (`rejectHint`, `logTerm`): the follower's guess of the largest
 * position at which both logs may agree, used for fast backtracking.
 */
export interface AppendResponseMessage extends MessageBase {
  type: "appResp";
  index: number;
  reject: boolean;
  rejectHint: number;
  logTerm: number;
}

/** Candidate -> voter. `transfer` marks an election started by a leadership transfer. */
export interface VoteMessage extends MessageBase {
  type: "vote" | "preVote";
  index: number;
  logTerm: number;
  transfer: boolean;
}

/** Voter -> candidate. */
export interface VoteResponseMessage extends MessageBase {
  type: "voteResp" | "preVoteResp";
  reject: boolean;
}

/**
 * Leader -> follower keep-alive; `context` is set when it confirms leadership for a read.
 * `sentAt` is the leader's tick count, echoed back to time lease-based reads.
 */
export interface HeartbeatMessage extends MessageBase {
  type: "heartbeat";
  commit: number;
  context: string;
  sentAt: number;
}

/** Follower -> leader, echoing the heartbeat's `context` and `sentAt`. */
export interface HeartbeatResponseMessage extends MessageBase {
  type: "heartbeatResp";
  context: string;
  sentAt: number;
}

/** Leader -> follower: one chunk (`data` at byte `offset`) of the snapshot `metadata`. */
export interface SnapshotMessage extends MessageBase {
  type: "snap";
  metadata: SnapshotMetadata;
  offset: number;
  totalBytes: number;
  data: Uint8Array;
}

/** Follower -> leader: how many bytes of snapshot `index` it holds, i.e. the next offset. */
export interface SnapshotResponseMessage extends MessageBase {
  type: "snapResp";
  index: number;
  offset: number;
}

/** Leader -> transfer target: campaign now, without waiting for a timeout or pre-vote. */
export interface TimeoutNowMessage extends MessageBase {
  type: "timeoutNow";
}

/** Follower -> leader: a read request forwarded for a read index. */
export interface ReadIndexMessage extends MessageBase {
  type: "readIndex";
  context: string;
}

/** Leader -> follower: the read index for a forwarded `context`. */
export interface ReadIndexResponseMessage extends MessageBase {
  type: "readIndexResp";
  index: number;
  context: string;
}

/** Every message nodes exchange. Dispatch on `type`. */
export type Message =
  | AppendMessage
  | AppendResponseMessage
  | VoteMessage
  | VoteResponseMessage
  | HeartbeatMessage
  | HeartbeatResponseMessage
  | SnapshotMessage
  | SnapshotResponseMessage
  | TimeoutNowMessage
  | ReadIndexMessage
  | ReadIndexResponseMessage;

/** Every message type name. */
export type MessageType = Message["type"];

/**
 * A read that may be served once the local state machine has applied `index`: every write
 * committed before the read was requested is at or below it.
 */
export interface ReadState {
  index: number;
  context: string;
}

/** Volatile state, reported in a {@link Ready} whenever it changes. */
export interface SoftState {
  leaderId: NodeId;
  state: StateType;
}

/** Why a request was refused. */
export type RefusalReason =
  | "not-leader"
  | "no-leader"
  | "transferring"
  | "removed"
  | "conf-change-pending"
  | "invalid-conf-change"
  | "invalid-target"
  | "uncommitted-limit";

/**
 * The outcome of a proposal. When `ok` is false nothing was appended; `leaderId` is the leader
 * this node knows of (0 if none), so the caller can forward or redirect.
 */
export type ProposeResult =
  | { ok: true; index: number; term: number }
  | { ok: false; reason: RefusalReason; leaderId: NodeId; message: string };

/** The outcome of a request that produces no log entry (read index, leadership transfer). */
export type RequestResult =
  | { ok: true }
  | { ok: false; reason: RefusalReason; leaderId: NodeId; message: string };
