import { Inflights } from "./inflights.ts";
import type { Snapshot } from "./types.ts";

/**
 * How the leader replicates to one follower:
 * - probe: one append per heartbeat until the follower's match is found;
 * - replicate: optimistic pipelining, bounded by the in-flight window;
 * - snapshot: the follower is behind the compacted log and receives a snapshot in chunks.
 */
export type ProgressState = "probe" | "replicate" | "snapshot";

/** The leader's view of one follower (or of itself). */
export class Progress {
  /** Highest index known to match the leader's log. */
  match = 0;
  /** Next index to send. */
  next: number;
  state: ProgressState = "probe";
  /**
   * An append went out: in probe state wait for its answer (or a heartbeat) before another; in
   * replicate state send no empty appends until then (entries still flow within the window).
   */
  probeSent = false;
  /** Set when the peer was heard from in the current CheckQuorum period. */
  recentActive = false;
  isLearner: boolean;
  /** Highest commit index sent to the peer, to know when an empty append is worth sending. */
  sentCommit = 0;
  /** In snapshot state: the snapshot being sent and the byte offset the peer acknowledged. */
  pendingSnapshot: Snapshot | undefined = undefined;
  snapshotOffset = 0;
  /** In snapshot state: the end of the furthest chunk sent (chunks in flight end here). */
  snapshotSent = 0;
  /** In snapshot state: the offset last sent again on a repeated acknowledgement (-1: none). */
  snapshotResent = -1;
  /** In replicate state: leader tick since which the oldest unacknowledged append has been out. */
  inflightSince = 0;
  /** Leader tick at which the newest heartbeat this peer acknowledged was sent. */
  leaseSentAt = Number.NEGATIVE_INFINITY;
  readonly inflights: Inflights;

  constructor(next: number, isLearner: boolean, maxInflight: number, maxInflightBytes: number) {
    this.next = next;
    this.isLearner = isLearner;
    this.inflights = new Inflights(maxInflight, maxInflightBytes);
  }

  /** Back to a clean probe state from `next` (on leadership change). */
  reset(next: number): void {
    this.match = 0;
    this.next = next;
    this.state = "probe";
    this.probeSent = false;
    this.recentActive = false;
    this.sentCommit = 0;
    this.pendingSnapshot = undefined;
    this.snapshotOffset = 0;
    this.snapshotSent = 0;
    this.snapshotResent = -1;
    this.leaseSentAt = Number.NEGATIVE_INFINITY;
    this.inflights.reset();
  }

  becomeProbe(): void {
    // After a snapshot, resume after it: the follower has at least that much.
    const snapIndex = this.state === "snapshot" ? (this.pendingSnapshot?.metadata.index ?? 0) : 0;
    this.state = "probe";
    this.next = Math.max(this.match + 1, snapIndex + 1);
    this.probeSent = false;
    this.pendingSnapshot = undefined;
    this.snapshotOffset = 0;
    this.snapshotSent = 0;
    this.snapshotResent = -1;
    this.inflights.reset();
  }

  becomeReplicate(): void {
    this.state = "replicate";
    this.next = this.match + 1;
    this.probeSent = false;
    this.pendingSnapshot = undefined;
    this.inflights.reset();
  }

  becomeSnapshot(snap: Snapshot): void {
    this.state = "snapshot";
    this.probeSent = false;
    this.pendingSnapshot = snap;
    this.snapshotOffset = 0;
    this.snapshotSent = 0;
    this.snapshotResent = -1;
    this.inflights.reset();
  }

  /**
   * Records that an append carrying `count` entries up to `lastIndex` (`bytes` of payload)
   * went out. Any append pauses further empty probes until the peer answers a heartbeat.
   */
  sentEntries(count: number, lastIndex: number, bytes: number): void {
    if (this.state === "replicate" && count > 0) {
      this.next = lastIndex + 1;
      this.inflights.add(lastIndex, bytes);
    }
    this.probeSent = true;
  }

  /** The follower acknowledged `index`. Returns false if that was old news. */
  maybeUpdate(index: number): boolean {
    if (index <= this.match) return false;
    this.match = index;
    if (this.next < index + 1) this.next = index + 1;
    this.probeSent = false;
    return true;
  }

  /**
   * The follower rejected an append at `rejected`, hinting that the logs may match at
   * `matchHint`. Returns false if the rejection is stale.
   */
  maybeDecrTo(rejected: number, matchHint: number): boolean {
    if (this.state === "replicate") {
      // Rejections at or below match are from earlier, reordered messages.
      if (rejected <= this.match) return false;
      this.next = this.match + 1;
      return true;
    }
    // In probe state only the answer to the latest probe (next - 1) counts.
    if (this.next - 1 !== rejected) return false;
    this.next = Math.max(Math.min(rejected, matchHint + 1), this.match + 1);
    this.probeSent = false;
    return true;
  }
}
