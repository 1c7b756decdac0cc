import { COMPACTED, entryBytes, type Storage, UNAVAILABLE } from "./storage.ts";
import type { Entry, Snapshot } from "./types.ts";
import { Unstable } from "./unstable.ts";

/**
 * The node's view of the log: the persisted part (Storage) followed by the unstable tail, plus
 * the commit and apply positions.
 */
export class RaftLog {
  readonly storage: Storage;
  readonly unstable: Unstable;
  /** Highest index known to be stored on a quorum. */
  committed: number;
  /** Highest index the application has applied. */
  applied: number;

  constructor(storage: Storage) {
    this.storage = storage;
    const first = storage.firstIndex();
    this.unstable = new Unstable(storage.lastIndex() + 1);
    this.committed = first - 1;
    this.applied = first - 1;
  }

  firstIndex(): number {
    const i = this.unstable.maybeFirstIndex();
    return i >= 0 ? i : this.storage.firstIndex();
  }

  lastIndex(): number {
    const i = this.unstable.maybeLastIndex();
    return i >= 0 ? i : this.storage.lastIndex();
  }

  /** The term at `index`, or COMPACTED / UNAVAILABLE. */
  term(index: number): number {
    const dummy = this.firstIndex() - 1;
    if (index < dummy) return COMPACTED;
    if (index > this.lastIndex()) return UNAVAILABLE;
    const t = this.unstable.maybeTerm(index);
    return t >= 0 ? t : this.storage.term(index);
  }

  lastTerm(): number {
    return this.term(this.lastIndex());
  }

  matchTerm(index: number, term: number): boolean {
    const t = this.term(index);
    return t >= 0 && t === term;
  }

  /** Raft's election restriction: is a log ending at (`index`, `term`) at least as current? */
  isUpToDate(index: number, term: number): boolean {
    const lastTerm = this.lastTerm();
    return term > lastTerm || (term === lastTerm && index >= this.lastIndex());
  }

  /**
   * Appends the leader's entries after (`prevIndex`, `prevTerm`) if the logs match there.
   * Returns the index of the last new entry, or -1 when the consistency check fails.
   * Entries that already match are kept: only a conflicting suffix is replaced.
   */
  maybeAppend(prevIndex: number, prevTerm: number, commit: number, ents: Entry[]): number {
    if (!this.matchTerm(prevIndex, prevTerm)) return -1;
    const lastNew = prevIndex + ents.length;
    const ci = this.findConflict(ents);
    if (ci !== 0) {
      if (ci <= this.committed)
        throw new Error(`entry ${ci} conflicts with committed entry (committed ${this.committed})`);
      const from = ci - (prevIndex + 1);
      this.append(from === 0 ? ents : ents.slice(from));
    }
    this.commitTo(Math.min(commit, lastNew));
    return lastNew;
  }

  /** Appends entries (possibly replacing a suffix) and returns the new last index. */
  append(ents: readonly Entry[], allowTruncatingCommitted = false): number {
    if (ents.length === 0) return this.lastIndex();
    const after = ents[0]!.index - 1;
    if (after < this.committed && !allowTruncatingCommitted)
      throw new Error(`append after ${after} is below committed ${this.committed}`);
    this.unstable.truncateAndAppend(ents);
    return this.lastIndex();
  }

  /** Appends one entry at lastIndex + 1 (the leader's hot path). */
  appendOne(e: Entry): void {
    this.unstable.push(e);
  }

  /**
   * The index of the first entry in `ents` whose term differs from ours (or that we lack),
   * or 0 when all of them are already present.
   */
  findConflict(ents: readonly Entry[]): number {
    for (let i = 0; i < ents.length; i++) {
      const e = ents[i]!;
      if (!this.matchTerm(e.index, e.term)) return e.index;
    }
    return 0;
  }

  /**
   * The largest index <= `index` whose term is <= `term`, with that term: where the logs may
   * agree given that the other log has `term` at `index`. Terms of compacted or missing
   * entries count as 0.
   */
  findConflictByTerm(index: number, term: number): [number, number] {
    for (; index > 0; index--) {
      const t = this.term(index);
      if (t < 0) return [index, 0];
      if (t <= term) return [index, t];
    }
    return [0, 0];
  }

  commitTo(index: number): void {
    if (index <= this.committed) return;
    if (index > this.lastIndex())
      throw new Error(
        `commit ${index} is past the last index ${this.lastIndex()}: the log was truncated or lost`,
      );
    this.committed = index;
  }

  /** Commits `index` if it holds an entry of `term` (the leader's current term). */
  maybeCommit(index: number, term: number): boolean {
    if (index > this.committed && this.term(index) === term) {
      this.commitTo(index);
      return true;
    }
    return false;
  }

  appliedTo(index: number): void {
    if (index === 0) return;
    if (index > this.committed || index < this.applied)
      throw new Error(`applied ${index} outside [${this.applied}, ${this.committed}]`);
    this.applied = index;
  }

  hasNextCommittedEntries(): boolean {
    return this.committed > this.applied && this.committed >= this.firstIndex();
  }

  /** Committed entries not yet applied. */
  nextCommittedEntries(): Entry[] {
    const lo = Math.max(this.applied + 1, this.firstIndex());
    if (this.committed < lo) return [];
    return this.slice(lo, this.committed + 1, Number.POSITIVE_INFINITY);
  }

  /** Entries in [lo, hi) up to `maxBytes` (at least one); `lo` must not be compacted. */
  slice(lo: number, hi: number, maxBytes: number): Entry[] {
    if (lo >= hi) return [];
    const u = this.unstable;
    if (lo >= u.offset) return limitBytes(u.slice(lo, hi), maxBytes);
    const storedHi = Math.min(hi, u.offset);
    const stored = this.storage.entries(lo, storedHi, maxBytes);
    if (hi <= u.offset || stored.length < storedHi - lo) return stored;
    let bytes = 0;
    for (let i = 0; i < stored.length; i++) bytes += entryBytes(stored[i]!);
    const rest = limitBytes(u.slice(u.offset, hi), maxBytes - bytes, true);
    for (let i = 0; i < rest.length; i++) stored.push(rest[i]!);
    return stored;
  }

  /** The snapshot to send to a follower behind the log. */
  snapshot(): Snapshot {
    return this.unstable.snapshot ?? this.storage.snapshot();
  }

  restore(s: Snapshot): void {
    this.committed = s.metadata.index;
    this.unstable.restore(s);
  }
}

function limitBytes(ents: Entry[], maxBytes: number, allowEmpty = false): Entry[] {
  if (maxBytes === Number.POSITIVE_INFINITY) return ents;
  let bytes = 0;
  for (let i = 0; i < ents.length; i++) {
    bytes += entryBytes(ents[i]!);
    if (bytes > maxBytes && (i > 0 || allowEmpty)) {
      ents.length = i;
      break;
    }
  }
  return ents;
}
