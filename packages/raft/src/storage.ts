import type { ConfState, Entry, HardState, Snapshot } from "./types.ts";

/** Returned by `term()` for an index that was compacted into a snapshot. */
export const COMPACTED = -1;
/** Returned by `term()` for an index past the end of the log. */
export const UNAVAILABLE = -2;

/** An empty membership. */
export function emptyConfState(): ConfState {
  return { voters: [], learners: [], votersOutgoing: [], learnersNext: [], autoLeave: false };
}

/**
 * The durable state Raft reads. The core only reads it; the application writes to it while
 * handling a `Ready` (entries, hard state, snapshot) and compacts it after taking snapshots.
 */
export interface Storage {
  /** The persisted hard state and the membership of the latest snapshot. */
  initialState(): { hardState: HardState; confState: ConfState };
  /**
   * Entries in [lo, hi), at most `maxBytes` of data but always at least one entry.
   * `lo` must be at least `firstIndex()` and `hi` at most `lastIndex() + 1`.
   */
  entries(lo: number, hi: number, maxBytes: number): Entry[];
  /** The term of entry `index`, the snapshot's term at its index, or COMPACTED/UNAVAILABLE. */
  term(index: number): number;
  /** The first index still held as an entry (the snapshot's index + 1). */
  firstIndex(): number;
  /** The last index held (the snapshot's index when there are no entries). */
  lastIndex(): number;
  /** The most recent snapshot. */
  snapshot(): Snapshot;
}

/** The payload size Raft counts for flow control: data bytes only. */
export function entryBytes(e: Entry): number {
  return e.data.byteLength;
}

/**
 * A {@link Storage} in memory, with the write side the application uses. Used by tests, the
 * simulator and the benchmark; a durable implementation belongs to the service.
 */
export class MemoryStorage implements Storage {
  private hardState: HardState = { term: 0, vote: 0, commit: 0 };
  private snap: Snapshot = {
    metadata: { index: 0, term: 0, confState: emptyConfState() },
    data: new Uint8Array(0),
  };
  /** The position just before the first held entry (compacted up to here) and its term. */
  private offset = 0;
  private offsetTerm = 0;
  /** ents[i] has index offset + 1 + i. */
  private ents: Entry[] = [];

  /**
   * A storage for a node of a new cluster: the membership is recorded as a snapshot at index 1,
   * term 1, so every node starts from the same committed state and a node added later can be
   * caught up from a snapshot.
   */
  static bootstrap(
    confState: Partial<ConfState> & { voters: number[] },
    data?: Uint8Array,
  ): MemoryStorage {
    const s = new MemoryStorage();
    s.applySnapshot({
      metadata: { index: 1, term: 1, confState: { ...emptyConfState(), ...confState } },
      data: data ?? new Uint8Array(0),
    });
    s.setHardState({ term: 1, vote: 0, commit: 1 });
    return s;
  }

  initialState(): { hardState: HardState; confState: ConfState } {
    return { hardState: { ...this.hardState }, confState: this.snap.metadata.confState };
  }

  /** The persisted hard state. */
  getHardState(): HardState {
    return this.hardState;
  }

  /** Persists the hard state of a `Ready`. */
  setHardState(hs: HardState): void {
    this.hardState = { term: hs.term, vote: hs.vote, commit: hs.commit };
  }

  entries(lo: number, hi: number, maxBytes: number): Entry[] {
    const first = this.offset + 1;
    if (lo < first) throw new Error(`entries(${lo}): compacted, first index is ${first}`);
    if (hi > this.lastIndex() + 1)
      throw new Error(`entries(${lo}, ${hi}): past last index ${this.lastIndex()}`);
    const start = lo - first;
    let end = hi - first;
    if (maxBytes !== Number.POSITIVE_INFINITY) {
      let bytes = 0;
      for (let i = start; i < end; i++) {
        bytes += entryBytes(this.ents[i]!);
        if (bytes > maxBytes && i > start) {
          end = i;
          break;
        }
      }
    }
    return this.ents.slice(start, end);
  }

  term(index: number): number {
    if (index < this.offset) return COMPACTED;
    if (index === this.offset) return this.offsetTerm;
    const e = this.ents[index - this.offset - 1];
    return e === undefined ? UNAVAILABLE : e.term;
  }

  firstIndex(): number {
    return this.offset + 1;
  }

  lastIndex(): number {
    return this.offset + this.ents.length;
  }

  snapshot(): Snapshot {
    return this.snap;
  }

  /** Persists the snapshot of a `Ready`: it replaces the whole log. */
  applySnapshot(snap: Snapshot): void {
    if (snap.metadata.index < this.snap.metadata.index)
      throw new Error(
        `applySnapshot: snapshot at ${snap.metadata.index} is older than ${this.snap.metadata.index}`,
      );
    this.snap = snap;
    this.offset = snap.metadata.index;
    this.offsetTerm = snap.metadata.term;
    this.ents = [];
  }

  /**
   * Records a snapshot of the application state as of `index` (already applied), with the
   * membership at that index. It is what a follower behind the compacted log receives.
   */
  createSnapshot(index: number, confState: ConfState, data: Uint8Array): Snapshot {
    if (index <= this.snap.metadata.index)
      throw new Error(`createSnapshot(${index}): not newer than ${this.snap.metadata.index}`);
    const term = this.term(index);
    if (term < 0) throw new Error(`createSnapshot(${index}): index not in the log`);
    this.snap = { metadata: { index, term, confState }, data };
    return this.snap;
  }

  /**
   * Discards entries up to and including `index`, which must be covered by the snapshot.
   * Keeping some entries after the snapshot lets slightly lagging followers catch up from the
   * log instead of a snapshot. No-op when already compacted.
   */
  compact(index: number): void {
    if (index <= this.offset) return;
    if (index > this.snap.metadata.index)
      throw new Error(
        `compact(${index}): past the snapshot at ${this.snap.metadata.index}; create one first`,
      );
    const term = this.term(index);
    this.ents = this.ents.slice(index - this.offset);
    this.offset = index;
    this.offsetTerm = term;
  }

  /**
   * Persists entries, replacing any conflicting suffix (entries at or after the first new
   * index). Entries already compacted are skipped.
   */
  append(entries: readonly Entry[]): void {
    const n = entries.length;
    if (n === 0) return;
    const first = this.offset + 1;
    if (entries[n - 1]!.index < first) return;
    let from = 0;
    if (entries[0]!.index < first) from = first - entries[0]!.index;
    const at = entries[from]!.index - first;
    const ents = this.ents;
    if (at > ents.length)
      throw new Error(
        `append: missing entries between ${this.lastIndex()} and ${entries[from]!.index}`,
      );
    if (at < ents.length) ents.length = at;
    for (let i = from; i < n; i++) ents.push(entries[i]!);
  }
}
