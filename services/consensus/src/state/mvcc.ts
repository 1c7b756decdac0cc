import { create, fromBinary } from "@bufbuild/protobuf";
import { BinaryReader, BinaryWriter, WireType } from "@bufbuild/protobuf/wire";
import { KeyRecordSchema } from "@quartet/proto/quartet/consensus/v1/internal_pb";
import { type KeyValue, KeyValueSchema } from "@quartet/proto/quartet/consensus/v1/kv_pb";
import { compactedError, futureRevisionError } from "./errors.ts";
import { inRange, type KeyRange, type KeyString, keyString } from "./keys.ts";

/** One version of a key, or its deletion. Records of a key are in (mod_revision, sub) order. */
export interface KeyRecord {
  kv: KeyValue;
  /** Position of the write inside its revision (a Txn's writes share one revision). */
  sub: number;
  tombstone: boolean;
}

/** KeyHistory's field numbers: the key, then one entry per record. */
const historyKeyField = 1;
const historyRecordsField = 2;

/**
 * A multi-version key-value store like etcd's mvcc: every key keeps its versions by revision,
 * so reads can go back to any revision not yet compacted. Revisions are assigned by the caller
 * (the state machine bumps one per write command); the store only records them.
 *
 * Versions are kept encoded, one buffer per key (see {@link KeyVersions}), and decoded when
 * read: as objects (a KeyValue with its views and bigints, about ten per version) every
 * version outlived many young-generation GCs, each of which copied it, and a store of 250,000
 * versions made millions of objects for every full GC to mark. As bytes they are outside the
 * JS heap, and a snapshot is the buffers as they are.
 */
export class MvccStore {
  /** The revision of the last write. */
  revision = 0n;
  /** Reads below this revision fail: their history is gone. */
  compactRevision = 0n;
  private readonly history = new Map<KeyString, KeyVersions>();
  /** Every key with a record, sorted bytewise. */
  private keys: KeyString[] = [];

  /** Fails unless `rev` (0: current) can be read. Returns the revision to read at. */
  readRevision(rev: bigint): bigint {
    if (rev <= 0n) return this.revision;
    if (rev > this.revision) throw futureRevisionError(rev, this.revision);
    if (rev < this.compactRevision) throw compactedError(rev, this.compactRevision);
    return rev;
  }

  /** The live version of `key` at `rev` (default: including writes of the pending revision). */
  get(key: KeyString, rev?: bigint): KeyValue | undefined {
    const versions = this.history.get(key);
    if (versions === undefined) return undefined;
    const r = rev === undefined ? versions.newest() : versions.at(rev);
    return r === undefined || r.tombstone ? undefined : r.kv;
  }

  /** The live versions in `range` at `rev` (default: latest), in key order. */
  range(range: KeyRange, rev?: bigint): KeyValue[] {
    const out: KeyValue[] = [];
    if (range.end === undefined) {
      const kv = this.get(range.start, rev);
      if (kv !== undefined) out.push(kv);
      return out;
    }
    for (let i = lowerBound(this.keys, range.start); i < this.keys.length; i++) {
      const k = this.keys[i]!;
      if (!inRange(range, k)) break;
      const kv = this.get(k, rev);
      if (kv !== undefined) out.push(kv);
    }
    return out;
  }

  /** Writes a version of `key` at revision `rev`, sub-revision `sub`. Returns it and the previous. */
  put(
    key: KeyString,
    keyBytes: Uint8Array,
    value: Uint8Array,
    lease: bigint,
    rev: bigint,
    sub: number,
  ): { kv: KeyValue; prev: KeyValue | undefined } {
    const prev = this.get(key);
    const kv = create(KeyValueSchema, {
      key: keyBytes,
      value,
      lease,
      modRevision: rev,
      createRevision: prev === undefined ? rev : prev.createRevision,
      version: prev === undefined ? 1n : prev.version + 1n,
    });
    this.append(key, { kv, sub, tombstone: false });
    return { kv, prev };
  }

  /** Deletes `key` at revision `rev` if it is live. Returns the deleted version. */
  delete(key: KeyString, rev: bigint, sub: number): KeyValue | undefined {
    const prev = this.get(key);
    if (prev === undefined) return undefined;
    const kv = create(KeyValueSchema, { key: prev.key, modRevision: rev });
    this.append(key, { kv, sub, tombstone: true });
    return prev;
  }

  /**
   * Drops history below `rev`: each key keeps its newest record at or below `rev` unless that
   * record is a deletion, and every record above. The caller checks `rev` is valid.
   */
  compact(rev: bigint): void {
    this.compactRevision = rev;
    const emptied = new Set<KeyString>();
    for (const [k, versions] of this.history) {
      const recs = versions.records();
      let keepFrom = 0;
      for (let i = 0; i < recs.length && recs[i]!.kv.modRevision <= rev; i++) keepFrom = i;
      if (recs[keepFrom]!.kv.modRevision <= rev && recs[keepFrom]!.tombstone) keepFrom++;
      if (keepFrom === 0) continue;
      if (keepFrom === recs.length) {
        this.history.delete(k);
        emptied.add(k);
      } else {
        this.history.set(k, versions.dropOldest(keepFrom));
      }
    }
    if (emptied.size > 0) this.keys = this.keys.filter((k) => !emptied.has(k));
  }

  /**
   * Each key in `range` written at or after revision `from`, with all its records, in key
   * order. Decodes the versions of those keys only: a watch from a recent revision decodes
   * the newest version of each key in its range and the history of the few written since.
   */
  *historiesSince(range: KeyRange, from: bigint): Iterable<[KeyString, readonly KeyRecord[]]> {
    for (let i = lowerBound(this.keys, range.start); i < this.keys.length; i++) {
      const k = this.keys[i]!;
      if (!inRange(range, k)) break;
      const versions = this.history.get(k)!;
      if (versions.newest()!.kv.modRevision >= from) yield [k, versions.records()];
    }
  }

  /**
   * Every key with its records as the `records` entries of a KeyHistory, in key order. The
   * bytes never change, whatever the store does later: they can be sent while it goes on.
   */
  *encodedEntries(): Iterable<[KeyString, Uint8Array]> {
    for (const k of this.keys) yield [k, this.history.get(k)!.encoded()];
  }

  /**
   * Restores one key from an encoded KeyHistory (from a snapshot, in key order). Returns the
   * key and its newest record.
   */
  loadHistory(history: Uint8Array): [KeyString, KeyRecord] {
    const r = new BinaryReader(history);
    let key: KeyString | undefined;
    const versions = new KeyVersions();
    while (r.pos < r.len) {
      const start = r.pos;
      const [field, wireType] = r.tag();
      if (field === historyKeyField && wireType === WireType.LengthDelimited) {
        key = keyString(r.bytes());
      } else if (field === historyRecordsField && wireType === WireType.LengthDelimited) {
        r.skip(wireType);
        versions.appendEncoded(history.subarray(start, r.pos));
      } else {
        r.skip(wireType);
      }
    }
    const newest = versions.newest();
    if (key === undefined || newest === undefined) {
      throw new Error("snapshot: a key's history without its key or records");
    }
    this.history.set(key, versions);
    this.keys.push(key);
    return [key, newest];
  }

  private append(key: KeyString, rec: KeyRecord): void {
    const versions = this.history.get(key);
    if (versions !== undefined) {
      versions.append(rec);
      return;
    }
    const fresh = new KeyVersions();
    fresh.append(rec);
    this.history.set(key, fresh);
    this.keys.splice(lowerBound(this.keys, key), 0, key);
  }
}

/** Encodes each record; one for all keys, so its buffer grows once. */
const recordWriter = new BinaryWriter();

/**
 * One key's records, oldest first, as the `records` entries of its KeyHistory (tag, length,
 * KeyRecord), in a buffer that grows by doubling. Bytes once written are never changed (a
 * compaction builds a new buffer), so views handed out of them stay valid.
 */
class KeyVersions {
  private buf = new Uint8Array(0);
  private length = 0;
  /** Where the newest record's KeyRecord begins (after its tag and length). */
  private newestAt = 0;

  newest(): KeyRecord | undefined {
    if (this.length === 0) return undefined;
    return decodeRecord(this.buf.subarray(this.newestAt, this.length));
  }

  /** The newest record at or below revision `rev`. */
  at(rev: bigint): KeyRecord | undefined {
    const newest = this.newest();
    if (newest === undefined || newest.kv.modRevision <= rev) return newest;
    let found: KeyRecord | undefined;
    for (const r of this.records()) {
      if (r.kv.modRevision > rev) break;
      found = r;
    }
    return found;
  }

  records(): KeyRecord[] {
    const out: KeyRecord[] = [];
    const r = new BinaryReader(this.encoded());
    while (r.pos < r.len) {
      r.tag();
      out.push(decodeRecord(r.bytes()));
    }
    return out;
  }

  encoded(): Uint8Array {
    return this.buf.subarray(0, this.length);
  }

  append(rec: KeyRecord): void {
    writeRecord(recordWriter, rec);
    this.appendEncoded(recordWriter.finish());
  }

  /** Appends one `records` entry: its tag, its length, then a KeyRecord. */
  appendEncoded(entry: Uint8Array): void {
    const end = this.length + entry.byteLength;
    if (end > this.buf.byteLength) {
      const grown = new Uint8Array(Math.max(end, this.buf.byteLength * 2));
      grown.set(this.encoded());
      this.buf = grown;
    }
    this.buf.set(entry, this.length);
    const r = new BinaryReader(entry);
    r.tag();
    r.uint32();
    this.newestAt = this.length + r.pos;
    this.length = end;
  }

  /** The same key without its `count` oldest records, in a buffer of its own. */
  dropOldest(count: number): KeyVersions {
    const r = new BinaryReader(this.encoded());
    for (let i = 0; i < count; i++) {
      r.tag();
      r.skip(WireType.LengthDelimited);
    }
    const rest = new KeyVersions();
    rest.buf = this.buf.slice(r.pos, this.length);
    rest.length = rest.buf.byteLength;
    rest.newestAt = this.newestAt - r.pos;
    return rest;
  }
}

function decodeRecord(bytes: Uint8Array): KeyRecord {
  const r = fromBinary(KeyRecordSchema, bytes);
  return { kv: r.kv ?? create(KeyValueSchema), sub: Number(r.sub), tombstone: r.tombstone };
}

/**
 * Writes one entry of a KeyHistory's `records`: the bytes toBinary writes for that KeyRecord
 * (fields in number order, defaults left out), at a fifth of the cost (toBinary's writer
 * starts small and grows, once per call). The state machine tests compare the two, and fail
 * if KeyValue or KeyRecord gain a field this does not write.
 */
function writeRecord(w: BinaryWriter, r: KeyRecord): void {
  const kv = r.kv;
  w.tag(historyRecordsField, WireType.LengthDelimited).fork();
  w.tag(1, WireType.LengthDelimited).fork(); // KeyRecord.kv
  if (kv.key.byteLength > 0) w.tag(1, WireType.LengthDelimited).bytes(kv.key);
  if (kv.createRevision !== 0n) w.tag(2, WireType.Varint).int64(kv.createRevision);
  if (kv.modRevision !== 0n) w.tag(3, WireType.Varint).int64(kv.modRevision);
  if (kv.version !== 0n) w.tag(4, WireType.Varint).int64(kv.version);
  if (kv.value.byteLength > 0) w.tag(5, WireType.LengthDelimited).bytes(kv.value);
  if (kv.lease !== 0n) w.tag(6, WireType.Varint).int64(kv.lease);
  w.join();
  if (r.sub !== 0) w.tag(2, WireType.Varint).int64(r.sub);
  if (r.tombstone) w.tag(3, WireType.Varint).bool(true);
  w.join();
}

function lowerBound(xs: readonly string[], x: string): number {
  let lo = 0;
  let hi = xs.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (xs[mid]! < x) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
