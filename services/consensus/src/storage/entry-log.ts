import { closeSync, openSync, readSync } from "node:fs";
import { COMPACTED, type Entry, UNAVAILABLE } from "@quartet/raft";
import { encodeRecord, RecordKind, readNumber, readSegment, StorageCorruptError } from "./wal.ts";

/** Where an entry's record is in the write-ahead log. */
export interface RecordPlace {
  /** The segment's number. */
  seq: number;
  /** Where the record starts in the segment, and its length with its header. */
  offset: number;
  length: number;
}

/** Reads `length` bytes of segment `seq` from `offset`. */
export type SegmentReader = (seq: number, offset: number, length: number) => Buffer;

/** The entry type codes the log's records carry. */
const entryTypeCodes = { normal: 0, confChange: 1 } as const;

/** A span of one segment read at once when entries come from disk. */
const readSpanBytes = 1 << 20;

/**
 * The entries of the Raft log after its compaction point, as the node's storage serves them:
 * the newest `recentEntries` (up to twice as many between trims) as objects, every one by its
 * term and its record's place in the write-ahead log, from where older ones are read back
 * when asked for. In a healthy cluster Raft only asks for recent entries (the leader's
 * appends, the entries to apply); a follower far behind, or a restart's replay, reads the
 * log. etcd keeps the whole log in memory until a snapshot; here 100,000 entries as objects
 * were most of the leader's long-lived heap, which every old-generation GC marked (V8
 * allocated them straight into the old generation: BENCHMARKS.md, kv).
 */
export class EntryLog {
  private baseIndex: number;
  private baseTerm: number;
  private count = 0;
  /** Per entry, from baseIndex + 1: term, segment, offset, length. */
  private places = new Float64Array(4 * 1024);
  /** recent[i] has index lastIndex() - recent.length + 1 + i. */
  private recent: Entry[] = [];

  private readonly recentEntries: number;
  private readonly read: SegmentReader;

  constructor(base: { index: number; term: number }, recentEntries: number, read: SegmentReader) {
    this.recentEntries = recentEntries;
    this.read = read;
    this.baseIndex = base.index;
    this.baseTerm = base.term;
  }

  firstIndex(): number {
    return this.baseIndex + 1;
  }

  lastIndex(): number {
    return this.baseIndex + this.count;
  }

  term(index: number): number {
    if (index < this.baseIndex) return COMPACTED;
    if (index === this.baseIndex) return this.baseTerm;
    if (index > this.lastIndex()) return UNAVAILABLE;
    return this.places[4 * (index - this.baseIndex - 1)]!;
  }

  /** Entries in [lo, hi), at most `maxBytes` of data but at least one (Raft's Storage.entries). */
  entries(lo: number, hi: number, maxBytes: number): Entry[] {
    if (lo <= this.baseIndex)
      throw new Error(`entries(${lo}): compacted, first index is ${this.firstIndex()}`);
    if (hi > this.lastIndex() + 1)
      throw new Error(`entries(${lo}, ${hi}): past last index ${this.lastIndex()}`);
    const out: Entry[] = [];
    let bytes = 0;
    const firstRecent = this.lastIndex() - this.recent.length + 1;
    // Entries below the recent ones come from disk a span at a time: `read` from index `readFrom`.
    let read: Entry[] = [];
    let readFrom = lo;
    for (let i = lo; i < hi; i++) {
      if (i < firstRecent && i - readFrom >= read.length) {
        read = this.readSpan(i, Math.min(hi, firstRecent));
        readFrom = i;
      }
      const e = i < firstRecent ? read[i - readFrom]! : this.recent[i - firstRecent]!;
      bytes += e.data.byteLength; // what Raft counts for flow control
      if (bytes > maxBytes && out.length > 0) break;
      out.push(e);
    }
    return out;
  }

  /**
   * Adds entries written at `places`, replacing any held from the first one's index on.
   * Entries at or below the compaction point are skipped.
   */
  append(entries: readonly Entry[], places: readonly RecordPlace[]): void {
    for (const [i, e] of entries.entries()) {
      if (this.appendFound(e.index, e.term, places[i]!)) this.recent.push(e);
    }
    // Trimmed in steps, not per entry: a slice of the newest every recentEntries appends.
    if (this.recent.length >= 2 * this.recentEntries)
      this.recent = this.recent.slice(this.recent.length - this.recentEntries);
  }

  /**
   * Adds an entry by its place alone (as found on open), replacing any held from its index
   * on. False when it is at or below the compaction point, and skipped.
   */
  appendFound(index: number, term: number, place: RecordPlace): boolean {
    if (index <= this.baseIndex) return false;
    if (index > this.lastIndex() + 1)
      throw new Error(`append: missing entries between ${this.lastIndex()} and ${index}`);
    this.truncateAfter(index - 1);
    this.push(term, place);
    return true;
  }

  /** Drops entries up to and including `index` (held, or the base itself). */
  compact(index: number): void {
    if (index <= this.baseIndex) return;
    if (index > this.lastIndex())
      throw new Error(`compact(${index}): past last index ${this.lastIndex()}`);
    const dropped = index - this.baseIndex;
    this.baseTerm = this.term(index);
    this.places.copyWithin(0, 4 * dropped, 4 * this.count);
    this.count -= dropped;
    this.baseIndex = index;
    if (this.recent.length > this.count)
      this.recent = this.recent.slice(this.recent.length - this.count);
  }

  /** Drops every entry: the log restarts after a snapshot at `base`. */
  reset(base: { index: number; term: number }): void {
    this.baseIndex = base.index;
    this.baseTerm = base.term;
    this.count = 0;
    this.recent = [];
  }

  private truncateAfter(index: number): void {
    const keep = index - this.baseIndex;
    if (keep >= this.count) return;
    const dropped = this.count - keep;
    this.count = keep;
    this.recent.length = Math.max(0, this.recent.length - dropped);
  }

  private push(term: number, place: RecordPlace): void {
    if (4 * (this.count + 1) > this.places.length) {
      const grown = new Float64Array(this.places.length * 2);
      grown.set(this.places.subarray(0, 4 * this.count));
      this.places = grown;
    }
    const at = 4 * this.count;
    this.places[at] = term;
    this.places[at + 1] = place.seq;
    this.places[at + 2] = place.offset;
    this.places[at + 3] = place.length;
    this.count++;
  }

  /**
   * Entries from `lo` (below `hi`) read from disk: those whose records lie in one span of one
   * segment, read at once and parsed as the log is on open (readSegment: each record's
   * checksum), each checked to be the entry of its index.
   */
  private readSpan(lo: number, hi: number): Entry[] {
    const at = (i: number) => 4 * (i - this.baseIndex - 1);
    const seq = this.places[at(lo) + 1]!;
    const from = this.places[at(lo) + 2]!;
    let end = lo + 1;
    while (
      end < hi &&
      this.places[at(end) + 1] === seq &&
      this.places[at(end) + 2]! + this.places[at(end) + 3]! - from <= readSpanBytes
    )
      end++;
    const last = at(end - 1);
    const { records } = readSegment(
      this.read(seq, from, this.places[last + 2]! + this.places[last + 3]! - from),
    );
    const out: Entry[] = [];
    let r = 0;
    for (let i = lo; i < end; i++) {
      const offset = this.places[at(i) + 2]! - from;
      while (r < records.length && records[r]!.offset < offset) r++;
      const record = records[r];
      if (
        record?.offset !== offset ||
        record.kind !== RecordKind.entry ||
        readNumber(record.payload, 0) !== i
      ) {
        throw new StorageCorruptError(
          `Raft log entry ${i} in segment ${seq} fails its checksum on read: the file was damaged after it was written; restore this member from a backup or remove and re-add it`,
        );
      }
      out.push(decodeEntry(record.payload));
    }
    return out;
  }
}

/** An entry's record: index, term, type code, data. */
export function encodeEntry(e: Entry): Buffer {
  const payload = Buffer.allocUnsafe(17 + e.data.byteLength);
  payload.writeDoubleBE(e.index, 0);
  payload.writeDoubleBE(e.term, 8);
  payload.writeUInt8(entryTypeCodes[e.type], 16);
  payload.set(e.data, 17);
  return encodeRecord(RecordKind.entry, payload);
}

/** The entry an entry record's payload holds; its data a view of the payload. */
function decodeEntry(p: Buffer): Entry {
  return {
    index: readNumber(p, 0),
    term: readNumber(p, 1),
    type: p.readUInt8(16) === entryTypeCodes.confChange ? "confChange" : "normal",
    data: new Uint8Array(p.buffer, p.byteOffset + 17, p.byteLength - 17),
  };
}

/** Reads a span of a segment file. */
export function segmentFileReader(path: (seq: number) => string): SegmentReader {
  return (seq, offset, length) => {
    const fd = openSync(path(seq), "r");
    try {
      const out = Buffer.allocUnsafe(length);
      const n = readSync(fd, out, 0, length, offset);
      if (n !== length) {
        throw new StorageCorruptError(
          `segment ${seq} of the Raft log ends at byte ${offset + n}, before a record it held (${offset}-${offset + length}): the file was cut after it was written; restore this member from a backup or remove and re-add it`,
        );
      }
      return out;
    } finally {
      closeSync(fd);
    }
  };
}
