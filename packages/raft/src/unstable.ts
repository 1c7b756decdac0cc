import type { Entry, Snapshot } from "./types.ts";

/**
 * The tail of the log (and possibly an incoming snapshot) that the application has not yet
 * reported persisted. `entries[i]` has index `offset + i`.
 */
export class Unstable {
  snapshot: Snapshot | undefined = undefined;
  entries: Entry[] = [];
  offset: number;
  /**
   * True once `entries` was handed out in a Ready: the array is then never mutated in place
   * (copy on write), so the application may keep it without copying.
   */
  private shared = false;

  constructor(offset: number) {
    this.offset = offset;
  }

  /** The first index, if a snapshot is pending; otherwise -1 (ask the storage). */
  maybeFirstIndex(): number {
    return this.snapshot ? this.snapshot.metadata.index + 1 : -1;
  }

  /** The last index held here, or -1 (ask the storage). */
  maybeLastIndex(): number {
    if (this.entries.length > 0) return this.offset + this.entries.length - 1;
    return this.snapshot ? this.snapshot.metadata.index : -1;
  }

  /** The term of `index` if held here, otherwise -1. */
  maybeTerm(index: number): number {
    if (index < this.offset) {
      const s = this.snapshot;
      return s !== undefined && s.metadata.index === index ? s.metadata.term : -1;
    }
    const e = this.entries[index - this.offset];
    return e === undefined ? -1 : e.term;
  }

  /** Hands the entries out for persistence; they must not change under the caller. */
  share(): Entry[] {
    this.shared = true;
    return this.entries;
  }

  /**
   * Entries up to `index` were persisted. Ignored if `index` no longer holds an entry of
   * `term` (it was overwritten after the Ready was handed out).
   */
  stableTo(index: number, term: number): void {
    if (index < this.offset || this.maybeTerm(index) !== term) return;
    const n = index + 1 - this.offset;
    this.entries = n === this.entries.length ? [] : this.entries.slice(n);
    this.shared = false;
    this.offset = index + 1;
  }

  /** The snapshot at `index` was persisted. */
  stableSnapTo(index: number): void {
    if (this.snapshot !== undefined && this.snapshot.metadata.index === index)
      this.snapshot = undefined;
  }

  restore(s: Snapshot): void {
    this.offset = s.metadata.index + 1;
    this.entries = [];
    this.shared = false;
    this.snapshot = s;
  }

  /** Appends one entry that directly follows the current tail. */
  push(e: Entry): void {
    if (this.shared) this.unshare();
    this.entries.push(e);
  }

  /** Appends `ents`, first dropping anything at or after `ents[0].index`. */
  truncateAndAppend(ents: readonly Entry[]): void {
    const after = ents[0]!.index;
    if (after === this.offset + this.entries.length) {
      if (this.shared) this.unshare();
      for (let i = 0; i < ents.length; i++) this.entries.push(ents[i]!);
    } else if (after <= this.offset) {
      // The new entries replace everything held here (and some of the storage's tail, which
      // the application overwrites when it persists them).
      this.offset = after;
      this.entries = ents.slice();
      this.shared = false;
    } else {
      const kept = this.entries.slice(0, after - this.offset);
      for (let i = 0; i < ents.length; i++) kept.push(ents[i]!);
      this.entries = kept;
      this.shared = false;
    }
  }

  /** Entries in [lo, hi); both must lie within what is held here. */
  slice(lo: number, hi: number): Entry[] {
    return this.entries.slice(lo - this.offset, hi - this.offset);
  }

  private unshare(): void {
    this.entries = this.entries.slice();
    this.shared = false;
  }
}
