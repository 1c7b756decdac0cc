import { crc32 } from "node:zlib";
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
export const historyKeyField = 1;
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
   * CRC-32 of every record (versions and deletions, as stored) with a revision at or below
   * `rev`, key by key in key order: the same on every member that holds the same history.
   */
  hash(rev: bigint): number {
    let crc = 0;
    for (const k of this.keys) crc = this.history.get(k)!.hashUpTo(Number(rev), crc);
    return crc;
  }

  /**
   * Drops history below `rev`: each key keeps its newest record at or below `rev` unless that
   * record is a deletion, and every record above. The caller checks `rev` is valid.
   */
  compact(rev: bigint): void {
    this.compactRevision = rev;
    const emptied = new Set<KeyString>();
    for (const [k, versions] of this.history) {
      const keepFrom = versions.firstKeptAfter(rev);
      if (keepFrom === 0) continue;
      if (keepFrom === versions.count) {
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
      if (versions.newestRevision() >= from) yield [k, versions.records()];
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
        versions.appendRead(history.subarray(start, r.pos));
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
 * KeyRecord), in a buffer that grows by doubling, with an index of numbers beside it: where
 * each entry starts and its mod_revision (negative for a tombstone; revisions are positive
 * and stay below 2^53), so reads at a past revision and compactions find a record without
 * decoding any other (decoding every version made a compaction of 250,000 versions hold the
 * apply loop for 150 ms). Bytes once written are never changed (a compaction builds a new
 * buffer), so views handed out of them stay valid.
 */
class KeyVersions {
  count = 0;
  private buf = new Uint8Array(0);
  private length = 0;
  private starts = new Uint32Array(2);
  private revisions = new Float64Array(2);

  newest(): KeyRecord | undefined {
    return this.count === 0 ? undefined : decodeRecord(this.record(this.count - 1));
  }

  newestRevision(): bigint {
    return BigInt(Math.abs(this.revisions[this.count - 1]!));
  }

  /** The newest record at or below revision `rev`. */
  at(rev: bigint): KeyRecord | undefined {
    const i = this.lastAtOrBelow(Number(rev));
    return i < 0 ? undefined : decodeRecord(this.record(i));
  }

  records(): KeyRecord[] {
    const out: KeyRecord[] = [];
    for (let i = 0; i < this.count; i++) out.push(decodeRecord(this.record(i)));
    return out;
  }

  /**
   * How many of the oldest records a compaction at `rev` drops: all below the newest at or
   * below `rev`, and that one too when it is a deletion.
   */
  firstKeptAfter(rev: bigint): number {
    const i = this.lastAtOrBelow(Number(rev));
    if (i < 0) return 0;
    return this.revisions[i]! < 0 ? i + 1 : i;
  }

  encoded(): Uint8Array {
    return this.buf.subarray(0, this.length);
  }

  /** `crc` extended with the encoded records at or below revision `rev`. */
  hashUpTo(rev: number, crc: number): number {
    const n = this.lastAtOrBelow(rev) + 1;
    if (n === 0) return crc;
    return crc32(this.buf.subarray(0, n < this.count ? this.starts[n]! : this.length), crc);
  }

  append(rec: KeyRecord): void {
    writeRecord(recordWriter, rec);
    const modRevision = Number(rec.kv.modRevision);
    this.appendEncoded(recordWriter.finish(), rec.tombstone ? -modRevision : modRevision);
  }

  /** Appends one `records` entry (its tag, its length, then a KeyRecord) read from a snapshot. */
  appendRead(entry: Uint8Array): void {
    const r = new BinaryReader(entry);
    r.tag();
    const head = decodeRecord(r.bytes());
    const modRevision = Number(head.kv.modRevision);
    this.appendEncoded(entry, head.tombstone ? -modRevision : modRevision);
  }

  /** The same key without its `count` oldest records, in a buffer of its own. */
  dropOldest(count: number): KeyVersions {
    const from = this.starts[count]!;
    const rest = new KeyVersions();
    rest.buf = this.buf.slice(from, this.length);
    rest.length = rest.buf.byteLength;
    rest.count = this.count - count;
    rest.starts = this.starts.slice(count, this.count).map((at) => at - from);
    rest.revisions = this.revisions.slice(count, this.count);
    return rest;
  }

  private appendEncoded(entry: Uint8Array, signedRevision: number): void {
    const end = this.length + entry.byteLength;
    if (end > this.buf.byteLength) this.buf = grown(this.buf, end, this.length);
    if (this.count === this.starts.length) {
      this.starts = grown(this.starts, this.count + 1, this.count);
      this.revisions = grown(this.revisions, this.count + 1, this.count);
    }
    this.buf.set(entry, this.length);
    this.starts[this.count] = this.length;
    this.revisions[this.count] = signedRevision;
    this.count++;
    this.length = end;
  }

  /** The encoded KeyRecord of record `i`. */
  private record(i: number): Uint8Array {
    const end = i + 1 < this.count ? this.starts[i + 1]! : this.length;
    const r = new BinaryReader(this.buf.subarray(this.starts[i]!, end));
    r.tag();
    return r.bytes();
  }

  /** The index of the newest record at or below `rev`, or -1. */
  private lastAtOrBelow(rev: number): number {
    let i = this.count - 1;
    while (i >= 0 && Math.abs(this.revisions[i]!) > rev) i--;
    return i;
  }
}

/** `array` in a new one of at least `size` elements (doubling), its first `used` copied. */
function grown<T extends Uint8Array | Uint32Array | Float64Array>(
  array: T,
  size: number,
  used: number,
): T {
  const out = new (array.constructor as new (n: number) => T)(Math.max(size, array.length * 2));
  out.set(array.subarray(0, used));
  return out;
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
