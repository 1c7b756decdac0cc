import { setImmediate as nextTurn } from "node:timers/promises";
import { Code, ConnectError } from "@connectrpc/connect";
import {
  type ConfChange,
  type ConfState,
  decodeConfChange,
  type Entry,
  type Message,
  type NodeId,
  type RaftConfig,
  RawNode,
  type RefusalReason,
  type Snapshot,
  type Status,
} from "@quartet/raft";
import { LiveSet } from "@quartet/server";
import { concatBytesInParts } from "../bytes.ts";
import { type DurableRaftStorage, StorageCorruptError } from "../storage/raft-storage.ts";

/** The replicated application: deterministic, so every member computes the same state. */
export interface StateMachine {
  /** Applies the data of the committed entry at `index`; the result goes to its proposer. */
  apply(index: number, data: Uint8Array): unknown;
  /**
   * The whole state, for a snapshot, as pieces whose concatenation is the snapshot: the state
   * as it is at the call (after the last applied entry), though the bytes may be built
   * afterwards, while entries go on being applied.
   */
  snapshot(): Promise<readonly Uint8Array[]>;
  /** Replaces the state with a snapshot's, taken at `index`. */
  restore(index: number, data: Uint8Array): void;
  /** Told of each membership change as it is applied at `index` (the membership after it: `conf`). */
  applyConfChange?(index: number, cc: ConfChange, conf: ConfState): void;
}

/**
 * Committed entries applied, and answered, before the member lets its clients' I/O in; the
 * same for the reads a ReadIndex round confirmed. Each part lets the answered clients' next
 * requests start a Ready (and a sync, or the next round) of their own: 32 did better than 16
 * at 64 clients in 3 of 3 alternating bench pairs (BENCHMARKS.md, kv).
 */
const answerChunk = 32;

/** Snapshot defaults (RaftNodeOptions, and the member's --snapshot-entries and --snapshot-bytes). */
export const defaultSnapshotEntries = 10_000;
export const defaultSnapshotBytes = 64 * 1024 * 1024;

/** A proposal or read this node could not take: `leaderId` (if known) can. */
export class NotLeaderError extends Error {
  override name = "NotLeaderError";
  readonly reason: RefusalReason;
  readonly leaderId: NodeId;
  constructor(reason: RefusalReason, leaderId: NodeId, message: string) {
    super(message);
    this.reason = reason;
    this.leaderId = leaderId;
  }
}

/** A proposal that was accepted but replaced by another leader's entry: it did not happen. */
export class ProposalDroppedError extends Error {
  override name = "ProposalDroppedError";
}

/**
 * What fails the calls waiting on a node that stopped (it is shutting down, or its storage
 * failed and it can no longer promise durability): Unavailable, as etcd answers, since another
 * member can take them. (A subclass of ConnectError would not be one to `instanceof`.)
 */
function nodeStoppedError(reason: string): ConnectError {
  return new ConnectError(
    `this member stopped (${reason}) before the call finished: retry on another member; a write may have been applied, so check before repeating one that is not idempotent`,
    Code.Unavailable,
  );
}

export interface RaftNodeOptions {
  id: NodeId;
  storage: DurableRaftStorage;
  stateMachine: StateMachine;
  /** Hands messages to the peer transport; must not block (queue per peer, drop when full). */
  send: (messages: Message[]) => void;
  /** Wall-clock length of a Raft tick. Default 100 ms (elections after 1-2 s, heartbeats every 100 ms). */
  tickMs?: number;
  /**
   * Snapshot and compact the log every this many entries. Each member takes its snapshots at
   * its own points, a third of the interval apart by member id, so no two encode theirs at
   * the same time and a quorum always has its threads free for the log.
   */
  snapshotEntries?: number;
  /**
   * Also snapshot once the entries applied since the last snapshot hold this many bytes of
   * data (default 64 MiB, a log segment), so large values cannot grow the log on disk for
   * thousands of entries. Staggered by member id as well (snapshotBytesFor).
   */
  snapshotBytes?: number;
  /** Entries kept before a snapshot, so a slightly lagging follower catches up from the log. */
  keepEntries?: number;
  /** Any other setting of the core (election and heartbeat ticks, windows, preVote...). */
  raft?: Omit<RaftConfig, "id" | "storage" | "applied">;
  /**
   * How long a leader lets a follower's new commit index wait for an append to carry it
   * before sending it alone (the core's lazyCommit, on here). Default 5 ms.
   */
  commitBumpMs?: number;
  /** Called once if the node stops because its storage failed. */
  onFatal?: (error: unknown) => void;
  /** Called after a role or leader change. */
  onRoleChange?: (status: Status) => void;
  /** Called after each Ready is handled (observers read status() then; keep it cheap). */
  onReady?: () => void;
}

interface PendingProposal {
  index: number;
  term: number;
  /** Takes it out of the pending list. */
  remove: () => void;
  resolve: (result: unknown) => void;
  reject: (error: unknown) => void;
}

interface Waiter {
  resolve: () => void;
  reject: (error: unknown) => void;
}

/**
 * One Raft member's event loop: it ticks the core on a timer, handles each `Ready` in the
 * order the core's contract gives (the leader's appends out, persist with one fsync, then
 * the other messages, then apply), matches
 * applied entries to the proposals waiting for them, and serves linearizable reads in
 * batches: the reads that arrive before a ReadIndex round's heartbeats leave share that
 * round, and every read that arrives while it is out waits for the next, so many reads cost
 * one heartbeat round. On start the state machine is rebuilt from the
 * latest snapshot and the committed log after it, so no entry is applied twice or skipped.
 */
export class RaftNode {
  readonly id: NodeId;
  private readonly raw: RawNode;
  private readonly storage: DurableRaftStorage;
  private readonly sm: StateMachine;
  private readonly send: (messages: Message[]) => void;
  private readonly snapshotEntries: number;
  private readonly snapshotBytes: number;
  /** Data bytes of the entries applied since this member's last snapshot. */
  private bytesSinceSnapshot = 0;
  private readonly keepEntries: number;
  private readonly electionTick: number;
  private readonly onFatal: (error: unknown) => void;
  private readonly onRoleChange: ((status: Status) => void) | undefined;
  private readonly onReady: (() => void) | undefined;
  private readonly timer: NodeJS.Timeout;
  private readonly commitBumpMs: number;
  /** Sends the commit index held back from followers, unless an append carried it first. */
  private commitBump: NodeJS.Timeout | undefined;
  /** Proposals waiting for their entry to apply, by increasing index. */
  private readonly proposals = new LiveSet<PendingProposal>();
  /** Reads waiting for the next ReadIndex round. */
  private nextReads: Waiter[] = [];
  /** The round out now: its context, its reads, and the tick it was sent at. */
  private readRound:
    | { context: string; reads: Waiter[]; sentAt: number; sent: boolean }
    | undefined;
  private readSeq = 0;
  /** Reads (and waits) to release once `index` is applied, in index order. */
  private appliedWaiters: { index: number; waiter: Waiter }[] = [];
  /** Whether proposals or reads were answered since the last sync (see run()). */
  private answered = false;
  private applied: number;
  private ticks = 0;
  /**
   * The tick at which each peer was last heard from (a few entries, one per member). Not the
   * core's `recentActive`: CheckQuorum clears that at every election timeout, so it reads
   * false for a live member until its next answer.
   */
  private readonly heardAt = new Map<NodeId, number>();
  private running = false;
  private scheduled = false;
  /** A snapshot whose file is being written beside the Raft loop, and once it is written. */
  private snapshotting = false;
  private writtenSnapshot: Snapshot | undefined;
  private stopped: ConnectError | undefined;

  constructor(options: RaftNodeOptions) {
    this.id = options.id;
    this.storage = options.storage;
    this.sm = options.stateMachine;
    this.send = options.send;
    this.snapshotEntries = options.snapshotEntries ?? defaultSnapshotEntries;
    this.snapshotBytes = snapshotBytesFor(
      options.id,
      options.snapshotBytes ?? defaultSnapshotBytes,
    );
    this.keepEntries = options.keepEntries ?? 5_000;
    this.electionTick = options.raft?.electionTick ?? 10;
    this.onFatal = options.onFatal ?? (() => {});
    this.onRoleChange = options.onRoleChange;
    this.onReady = options.onReady;
    const snap = this.storage.snapshot();
    this.sm.restore(snap.metadata.index, snap.data);
    this.applied = snap.metadata.index;
    this.commitBumpMs = options.commitBumpMs ?? 5;
    this.raw = new RawNode({
      // The leader's appends leave while it writes the same entries (Raft thesis 10.2.1).
      sendBeforePersist: true,
      // A new commit index goes with the next append, not in an append of its own: under a
      // closed loop of writes that halves the peer messages (BENCHMARKS.md, kv). armCommitBump
      // sends it if no append follows soon.
      lazyCommit: true,
      ...options.raft,
      id: options.id,
      storage: options.storage,
      applied: this.applied,
    });
    this.timer = setInterval(() => this.tick(), options.tickMs ?? 100);
    this.schedule();
  }

  /** Delivers a message from a peer. */
  step(message: Message): void {
    if (this.stopped) return;
    this.heardAt.set(message.from, this.ticks);
    if (!this.coreStep(() => this.raw.step(message))) return;
    this.schedule();
  }

  /**
   * A step or tick of the core, which may read entries older than the storage keeps in memory
   * back from disk (an append to a follower far behind): a record found damaged there stops
   * this member, as a failed write does, instead of being sent or skipped. False once it did.
   */
  private coreStep(call: () => void): boolean {
    try {
      call();
      return true;
    } catch (e) {
      if (!(e instanceof StorageCorruptError)) throw e;
      this.storageFailed(e);
      return false;
    }
  }

  /**
   * Whether this member heard from `id` (any message) within the last election timeout; itself
   * always. On a leader, whose followers answer every heartbeat, false means down or cut off.
   */
  reachable(id: NodeId): boolean {
    if (id === this.id) return true;
    const at = this.heardAt.get(id);
    return at !== undefined && this.ticks - at <= this.electionTick;
  }

  /** The transport could not reach `id`: stop pipelining to it until it answers. */
  reportUnreachable(id: NodeId): void {
    this.raw.reportUnreachable(id);
  }

  /**
   * Proposes `data` and resolves with the state machine's result once it is committed and
   * applied here. Throws NotLeaderError at once when this node cannot take proposals
   * (forward to `leaderId`), ProposalDroppedError when a new leader replaced the entry.
   * An abort leaves the outcome unknown: the entry may still commit.
   */
  propose(data: Uint8Array, signal?: AbortSignal): Promise<unknown> {
    return this.proposeWith(() => this.raw.propose(data), signal);
  }

  /** Proposes a membership change; resolves with the new membership once applied. */
  proposeConfChange(cc: ConfChange, signal?: AbortSignal): Promise<unknown> {
    return this.proposeWith(() => this.raw.proposeConfChange(cc), signal);
  }

  /**
   * Resolves once this node's state machine reflects every write committed before the call
   * (a linearizable read barrier). Works on followers too: the leader confirms its
   * leadership with a heartbeat round and names the commit index to wait for.
   */
  linearizableBarrier(signal?: AbortSignal): Promise<void> {
    if (this.stopped) return Promise.reject(this.stopped);
    return new Promise<void>((resolve, reject) => {
      const waiter = this.abortable({ resolve, reject }, signal);
      // A round whose heartbeats have not left yet still takes reads: they arrived before
      // anything it confirms could have been acknowledged to anyone.
      if (this.readRound !== undefined && !this.readRound.sent) this.readRound.reads.push(waiter);
      else this.nextReads.push(waiter);
      if (this.readRound === undefined) this.startReadRound();
    });
  }

  /** Resolves once the state machine has applied `index`. */
  waitApplied(index: number, signal?: AbortSignal): Promise<void> {
    if (index <= this.applied) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      this.waitFor(index, this.abortable({ resolve, reject }, signal));
    });
  }

  transferLeadership(to: NodeId): void {
    const r = this.raw.transferLeadership(to);
    if (!r.ok) throw new NotLeaderError(r.reason, r.leaderId, r.message);
    this.schedule();
  }

  /** The current term (cheaper than status(), which copies the progress of every peer). */
  term(): number {
    return this.raw.raft.term;
  }

  /** Whether this member leads now (cheaper than status()). */
  isLeader(): boolean {
    return this.raw.raft.state === "leader";
  }

  status(): Status {
    return this.raw.status();
  }

  appliedIndex(): number {
    return this.applied;
  }

  /** Stops ticking and fails what waits; the storage stays open (the caller closes it). */
  stop(reason = "the node is shutting down"): void {
    if (this.stopped) return;
    this.stopped = nodeStoppedError(reason);
    clearInterval(this.timer);
    clearTimeout(this.commitBump);
    const err = this.stopped;
    for (const p of this.proposals.values()) {
      p.remove();
      p.reject(err);
    }
    for (const w of this.nextReads) w.reject(err);
    for (const w of this.readRound?.reads ?? []) w.reject(err);
    for (const { waiter } of this.appliedWaiters) waiter.reject(err);
    this.nextReads = [];
    this.readRound = undefined;
    this.appliedWaiters = [];
  }

  private proposeWith(
    call: () => ReturnType<RawNode["propose"]>,
    signal: AbortSignal | undefined,
  ): Promise<unknown> {
    if (this.stopped) return Promise.reject(this.stopped);
    let r: ReturnType<RawNode["propose"]>;
    try {
      r = call();
    } catch (e) {
      // As in coreStep: a damaged record read back for the proposal stops this member.
      if (e instanceof StorageCorruptError) this.storageFailed(e);
      return Promise.reject(e);
    }
    return this.track(r, signal);
  }

  private track(
    r: ReturnType<RawNode["propose"]>,
    signal: AbortSignal | undefined,
  ): Promise<unknown> {
    if (!r.ok) return Promise.reject(new NotLeaderError(r.reason, r.leaderId, r.message));
    const { index, term } = r;
    this.schedule();
    // Pending proposals at this index or after it were proposed in an earlier term of this
    // node's and cut from its log since: they will never apply.
    for (let last = this.proposals.newest(); last && last.index >= index; ) {
      last.remove();
      last.reject(new ProposalDroppedError(`a new leader replaced entry ${last.index}; retry`));
      last = this.proposals.newest();
    }
    return new Promise((resolve, reject) => {
      if (signal?.aborted) return reject(signal.reason);
      const onAbort = () => {
        proposal.remove();
        reject(signal?.reason);
      };
      signal?.addEventListener("abort", onAbort, { once: true });
      const done = () => signal?.removeEventListener("abort", onAbort);
      const proposal: PendingProposal = {
        index,
        term,
        remove: () => {},
        resolve: (v) => {
          done();
          resolve(v);
        },
        reject: (e) => {
          done();
          reject(e);
        },
      };
      proposal.remove = this.proposals.add(proposal);
    });
  }

  private abortable(waiter: Waiter, signal: AbortSignal | undefined): Waiter {
    if (!signal) return waiter;
    let settled = false;
    const onAbort = () => {
      if (settled) return;
      settled = true;
      waiter.reject(signal.reason);
    };
    if (signal.aborted) onAbort();
    else signal.addEventListener("abort", onAbort, { once: true });
    return {
      resolve: () => {
        if (settled) return;
        settled = true;
        signal.removeEventListener("abort", onAbort);
        waiter.resolve();
      },
      reject: (e) => {
        if (settled) return;
        settled = true;
        signal.removeEventListener("abort", onAbort);
        waiter.reject(e);
      },
    };
  }

  private startReadRound(): void {
    const reads = this.nextReads;
    this.nextReads = [];
    const context = `${this.id}/${++this.readSeq}`;
    const r = this.raw.readIndex(context);
    if (!r.ok) {
      const err = new NotLeaderError(r.reason, r.leaderId, r.message);
      for (const w of reads) w.reject(err);
      return;
    }
    this.readRound = { context, reads, sentAt: this.ticks, sent: false };
    this.schedule();
  }

  private tick(): void {
    this.ticks++;
    if (!this.coreStep(() => this.raw.tick())) return;
    // A round lost to a leader change or a dropped message is sent again (reads keep their
    // own deadlines).
    const round = this.readRound;
    if (round && this.ticks - round.sentAt >= this.electionTick) {
      this.readRound = undefined;
      this.nextReads = [...round.reads, ...this.nextReads];
      this.startReadRound();
    }
    this.schedule();
  }

  private schedule(): void {
    if (this.scheduled || this.running || this.stopped) return;
    this.scheduled = true;
    // After the current turn: proposals made in it share one Ready (and one fsync).
    setImmediate(() => {
      this.scheduled = false;
      void this.run();
    });
  }

  private async run(): Promise<void> {
    if (this.running || this.stopped) return;
    this.running = true;
    try {
      this.recordWrittenSnapshot();
      while (!this.stopped && this.raw.hasReady()) {
        const rd = this.raw.ready();
        // This Ready carries the round's heartbeats: later reads wait for the next round.
        if (this.readRound !== undefined) this.readRound.sent = true;
        // The leader's appends first: followers write while it writes (its own copy counts
        // towards the commit only after this Ready's advance()).
        if (rd.earlyMessages.length > 0) this.send(rd.earlyMessages);
        // On a leader, committed entries it already holds on disk (all of them: it commits only
        // what it persisted) are applied, and their callers answered, while this Ready's write
        // runs. A follower applies after its write and after its acknowledgements have left:
        // the leader commits on those (the reads waiting on this member wait a turn longer).
        const leading = this.isLeader();
        const onDisk =
          rd.snapshot || !leading ? 0 : persistedPrefix(rd.committedEntries, rd.entries);
        for (let i = 0; i < onDisk; i++) {
          this.applyEntry(rd.committedEntries[i]!);
          if ((i + 1) % answerChunk === 0 && i + 1 < onDisk) {
            // Answer this part of a large batch now, so its clients work on their next
            // requests while this member applies the rest (not one lock-step round trip).
            this.releaseApplied();
            await nextTurn();
            // (`tick`, `step` and proposals may come in meanwhile: the core takes them into
            // the next Ready.) A node stopped meanwhile leaves this Ready unfinished.
            if (this.stopped) return;
          }
        }
        if (onDisk > 0) this.releaseApplied();
        if (rd.snapshot || rd.entries.length > 0 || rd.hardState) {
          // Whether a leader answered since its last sync. (A follower's acknowledgements,
          // which the commit waits for, follow its sync: it takes no turn for its answers.)
          const answered = leading && this.answered;
          if (rd.mustSync && (rd.earlyMessages.length > 0 || onDisk > 0 || answered)) {
            // The sync blocks this thread, and Node's HTTP/2 writes leave only on a later
            // turn of the event loop: without this turn the appends above would reach the
            // followers, and the answers the clients, only after the sync.
            await nextTurn();
            if (this.stopped) return;
            if (answered) {
              // An answer's trailers (gRPC's status) leave a turn after its message: Node's
              // HTTP/2 submits them from an immediate of their own. Without this second turn
              // the answers given since the last sync would be complete at their clients only
              // after this one (BENCHMARKS.md, kv: more puts/s and a lower p99 at 16 clients).
              await nextTurn();
              if (this.stopped) return;
            }
          }
          if (rd.mustSync) this.answered = false;
          await this.storage.persist(rd, rd.mustSync);
        }
        if (rd.messages.length > 0) {
          this.send(rd.messages);
          if (!leading && rd.committedEntries.length > 0) {
            // Node's HTTP/2 writes leave on a later turn of the event loop: without this one
            // the acknowledgements would wait for the apply below.
            await nextTurn();
            if (this.stopped) return;
          }
        }
        if (rd.snapshot) {
          this.sm.restore(rd.snapshot.metadata.index, rd.snapshot.data);
          this.applied = rd.snapshot.metadata.index;
          this.bytesSinceSnapshot = 0;
          this.failProposalsUpTo(this.applied);
        }
        for (let i = onDisk; i < rd.committedEntries.length; i++)
          this.applyEntry(rd.committedEntries[i]!);
        for (const rs of rd.readStates) {
          if (rs.context !== this.readRound?.context) continue;
          const reads = this.readRound.reads;
          this.readRound = undefined;
          // Answered a part at a time, as applied writes are: the first clients get their
          // answers (and send their next reads) while this member serves the rest.
          for (let i = 0; i < reads.length; i += answerChunk) {
            for (const w of reads.slice(i, i + answerChunk)) this.waitFor(rs.index, w);
            if (i + answerChunk < reads.length) {
              await nextTurn();
              if (this.stopped) {
                // stop() failed what it could see; these it could not.
                for (const w of reads.slice(i + answerChunk)) w.reject(this.stopped);
                return;
              }
            }
          }
        }
        this.raw.advance();
        this.releaseApplied();
        if (rd.softState) this.onRoleChange?.(this.raw.status());
        this.onReady?.();
        if (this.readRound === undefined && this.nextReads.length > 0) this.startReadRound();
        this.recordWrittenSnapshot();
        this.maybeSnapshot();
      }
      this.armCommitBump();
    } catch (e) {
      this.storageFailed(e);
    } finally {
      this.running = false;
    }
  }

  private armCommitBump(): void {
    if (this.commitBump !== undefined || this.stopped || !this.raw.owesCommit()) return;
    this.commitBump = setTimeout(() => {
      this.commitBump = undefined;
      if (this.stopped || !this.coreStep(() => this.raw.bumpCommit())) return;
      this.schedule();
    }, this.commitBumpMs);
  }

  private applyEntry(e: Entry): void {
    let result: unknown;
    if (e.type === "confChange") {
      result = this.applyConfChange(e);
    } else if (e.data.byteLength > 0) {
      result = this.sm.apply(e.index, e.data);
    }
    this.applied = e.index;
    this.bytesSinceSnapshot += e.data.byteLength;
    // Entries apply in index order and a snapshot fails the proposals it covers, so no
    // pending proposal is below this entry: only the oldest can be its.
    const p = this.proposals.oldest();
    if (p === undefined || p.index !== e.index) return;
    p.remove();
    this.answered = true;
    if (p.term === e.term) p.resolve(result);
    else p.reject(new ProposalDroppedError(`a new leader replaced entry ${e.index}; retry`));
  }

  /** Membership changes go to the core, then to the state machine (e.g. members' addresses). */
  private applyConfChange(e: Entry): ConfState {
    const cc = decodeConfChange(e.data);
    const conf = this.raw.applyConfChange(cc);
    this.sm.applyConfChange?.(e.index, cc, conf);
    return conf;
  }

  private failProposalsUpTo(index: number): void {
    for (let p = this.proposals.oldest(); p && p.index <= index; p = this.proposals.oldest()) {
      p.remove();
      p.reject(new ProposalDroppedError(`entry ${p.index} was replaced by a snapshot; retry`));
    }
  }

  private waitFor(index: number, waiter: Waiter): void {
    if (index <= this.applied) {
      this.answered = true;
      waiter.resolve();
      return;
    }
    const list = this.appliedWaiters;
    let at = list.length;
    while (at > 0 && list[at - 1]!.index > index) at--;
    list.splice(at, 0, { index, waiter });
  }

  private releaseApplied(): void {
    const list = this.appliedWaiters;
    let n = 0;
    while (n < list.length && list[n]!.index <= this.applied) list[n++]!.waiter.resolve();
    if (n > 0) {
      this.answered = true;
      this.appliedWaiters = list.slice(n);
    }
  }

  private storageFailed(e: unknown): void {
    this.stop(`storage failed: ${(e as Error).message}`);
    this.onFatal(e);
  }

  /**
   * Takes a snapshot once enough entries were applied since the last, beside the Raft loop: the
   * state machine gives its state now (the consensus store keeps its versions encoded), the
   * pieces are joined between turns of the event loop, the file is written while Readies go
   * on, and the log names it between two Readies (recordWrittenSnapshot). A leader that
   * waited for the file (29 MB after 100,000 puts of 256 bytes, three members writing theirs
   * to one disk), or that encoded 200,000 versions in one piece, sent no heartbeats for over
   * an election timeout and lost its leadership.
   */
  private maybeSnapshot(): void {
    if (this.snapshotting) return;
    const snapIndex = this.storage.snapshot().metadata.index;
    if (
      snapshotPoint(this.applied, this.id, this.snapshotEntries) <= snapIndex &&
      this.bytesSinceSnapshot < this.snapshotBytes
    )
      return;
    this.snapshotting = true;
    this.bytesSinceSnapshot = 0;
    const conf: ConfState = this.raw.status().config;
    this.storage
      .prepareSnapshot(this.applied, conf, this.sm.snapshot().then(concatBytesInParts))
      .then(
        (snap) => {
          this.writtenSnapshot = snap;
          this.schedule();
        },
        (e: unknown) => {
          if (!this.stopped) this.storageFailed(e);
        },
      );
  }

  private recordWrittenSnapshot(): void {
    const snap = this.writtenSnapshot;
    if (snap === undefined || this.stopped) return;
    this.writtenSnapshot = undefined;
    this.snapshotting = false;
    this.storage.commitSnapshot(snap, this.keepEntries);
  }
}

/**
 * The last index at or below `applied` where member `id` takes a snapshot, every `every`
 * entries: at every, 2 * every, ... when `id % 3` is 0, a third of an interval later when it
 * is 1, two thirds later when it is 2, so three members never snapshot at the same point. 0
 * before the first.
 * Encoding and writing a 200,000-version state held each member's thread for seconds; when
 * all three did it at once, the leader found no follower to acknowledge its appends.
 */
export function snapshotPoint(applied: number, id: NodeId, every: number): number {
  const offset = Math.floor(((id % 3) * every) / 3);
  if (applied < every + offset) return 0;
  return Math.floor((applied - offset) / every) * every + offset;
}

/**
 * The data bytes after which member `id` takes a snapshot, `bytes` stretched by a third per
 * member id (x1, x4/3, x5/3): three members applying the same entries reach theirs apart.
 */
export function snapshotBytesFor(id: NodeId, bytes: number): number {
  return Math.floor((bytes * (3 + (id % 3))) / 3);
}

/** How many of `committed` (in index order) come before the first of `unpersisted`. */
function persistedPrefix(committed: readonly Entry[], unpersisted: readonly Entry[]): number {
  if (unpersisted.length === 0) return committed.length;
  const first = unpersisted[0]!.index;
  let n = 0;
  while (n < committed.length && committed[n]!.index < first) n++;
  return n;
}
