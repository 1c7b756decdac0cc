import { crc32 } from "node:zlib";
import { create, fromBinary } from "@bufbuild/protobuf";
import { BinaryReader, WireType } from "@bufbuild/protobuf/wire";
import { KeyRecordSchema } from "@quartet/proto/quartet/consensus/v1/internal_pb";
import { type KeyValue, KeyValueSchema } from "@quartet/proto/quartet/consensus/v1/kv_pb";
import { compactedError, futureRevisionError } from "./errors.ts";
import { inRange, type KeyRange, type KeyString, keyString } from "./keys.ts";
import {
  boolFieldSize,
  bytesFieldSize,
  delimitedSize,
  int64FieldSize,
  numberFieldSize,
  putBoolField,
  putBytesField,
  putDelimited,
  putInt64Field,
  putNumberField,
} from "./wire.ts";

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

  /**
   * Writes a version of `key` at revision `rev`, sub-revision `sub`. Returns it, the lease of
   * the live version it replaces (undefined when there was none), and with `withPrev` that
   * version itself: decoding it is most of a put's cost, and only watchers and `prev_kv` need it.
   */
  put(
    key: KeyString,
    keyBytes: Uint8Array,
    value: Uint8Array,
    lease: bigint,
    rev: bigint,
    sub: number,
    withPrev = true,
  ): { kv: KeyValue; prev: KeyValue | undefined; prevLease: bigint | undefined } {
    // The live version replaced: decoded whole when asked for, else only the three numbers.
    const prev = withPrev ? this.get(key) : undefined;
    const head = withPrev ? prev : this.history.get(key)?.newestLive();
    const kv = create(KeyValueSchema, {
      key: keyBytes,
      value,
      lease,
      modRevision: rev,
      createRevision: head === undefined ? rev : head.createRevision,
      version: head === undefined ? 1n : head.version + 1n,
    });
    this.append(key, { kv, sub, tombstone: false });
    return { kv, prev, prevLease: head?.lease };
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

  /**
   * What a put needs of the newest version, read from its bytes without decoding the rest;
   * undefined when there is none or it is a deletion.
   */
  newestLive(): { createRevision: bigint; version: bigint; lease: bigint } | undefined {
    if (this.count === 0 || this.revisions[this.count - 1]! < 0) return undefined;
    const r = new BinaryReader(this.record(this.count - 1));
    const head = { createRevision: 0n, version: 0n, lease: 0n };
    while (r.pos < r.len) {
      const [field, wireType] = r.tag();
      if (field !== 1 || wireType !== WireType.LengthDelimited) {
        r.skip(wireType);
        continue;
      }
      // KeyRecord.kv: a KeyValue
      const end = r.uint32() + r.pos;
      while (r.pos < end) {
        const [kvField, kvWireType] = r.tag();
        if (kvField === 2) head.createRevision = BigInt(r.int64());
        else if (kvField === 4) head.version = BigInt(r.int64());
        else if (kvField === 6) head.lease = BigInt(r.int64());
        else r.skip(kvWireType);
      }
    }
    return head;
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
    const start = this.length;
    const kvBytes = kvSize(rec.kv);
    const recordBytes = keyRecordSize(rec, kvBytes);
    this.reserve(delimitedSize(recordBytes));
    this.length = writeRecord(this.buf, start, rec, kvBytes, recordBytes);
    const modRevision = Number(rec.kv.modRevision);
    this.index(start, rec.tombstone ? -modRevision : modRevision);
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
    const start = this.length;
    this.reserve(entry.byteLength);
    this.buf.set(entry, start);
    this.length = start + entry.byteLength;
    this.index(start, signedRevision);
  }

  /** Room for `bytes` more after the records, and for one more record in the index. */
  private reserve(bytes: number): void {
    const end = this.length + bytes;
    if (end > this.buf.byteLength) this.buf = grownBytes(this.buf, end, this.length);
    if (this.count === this.starts.length) {
      this.starts = grown(this.starts, this.count + 1, this.count);
      this.revisions = grown(this.revisions, this.count + 1, this.count);
    }
  }

  /** Counts the record written at `start`. */
  private index(start: number, signedRevision: number): void {
    this.starts[this.count] = start;
    this.revisions[this.count] = signedRevision;
    this.count++;
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

/**
 * The bytes in a new buffer of at least `size` (doubling), their first `used` copied. Not
 * zero-filled (what is past `used` is written before it is read), and not from Node's shared
 * pool, which a long-lived slice would pin.
 */
function grownBytes(bytes: Uint8Array, size: number, used: number): Uint8Array<ArrayBuffer> {
  const length = Math.max(size, bytes.length * 2);
  // A plain Uint8Array over it: versions read out of the store are views of this buffer.
  const out = new Uint8Array(Buffer.allocUnsafeSlow(length).buffer as ArrayBuffer, 0, length);
  out.set(bytes.subarray(0, used));
  return out;
}

/** `array` in a new one of at least `size` elements (doubling), its first `used` copied. */
function grown<T extends Uint32Array | Float64Array>(array: T, size: number, used: number): T {
  const out = new (array.constructor as new (n: number) => T)(Math.max(size, array.length * 2));
  out.set(array.subarray(0, used));
  return out;
}

function decodeRecord(bytes: Uint8Array): KeyRecord {
  const r = fromBinary(KeyRecordSchema, bytes);
  return { kv: r.kv ?? create(KeyValueSchema), sub: Number(r.sub), tombstone: r.tombstone };
}

/** The size of a KeyRecord as {@link writeRecord} writes it, its KeyValue's being `kvBytes`. */
function keyRecordSize(r: KeyRecord, kvBytes: number): number {
  return delimitedSize(kvBytes) + numberFieldSize(r.sub) + boolFieldSize(r.tombstone);
}

function kvSize(kv: KeyValue): number {
  return (
    bytesFieldSize(kv.key) +
    int64FieldSize(kv.createRevision) +
    int64FieldSize(kv.modRevision) +
    int64FieldSize(kv.version) +
    bytesFieldSize(kv.value) +
    int64FieldSize(kv.lease)
  );
}

/**
 * Writes one entry of a KeyHistory's `records` (its tag, its length, then the KeyRecord of
 * `recordBytes`, whose KeyValue is `kvBytes`) into `buf` at `at` (room made by the caller),
 * returning where it ends: the bytes toBinary writes for that KeyRecord (fields in number
 * order, defaults left out), straight into the key's buffer (wire.ts says why). The state
 * machine tests compare the two, and fail if KeyValue or KeyRecord gain a field this does not
 * write.
 */
function writeRecord(
  buf: Uint8Array,
  at: number,
  r: KeyRecord,
  kvBytes: number,
  recordBytes: number,
): number {
  const kv = r.kv;
  at = putDelimited(buf, at, historyRecordsField, recordBytes);
  at = putDelimited(buf, at, 1, kvBytes); // KeyRecord.kv
  at = putBytesField(buf, at, 1, kv.key);
  at = putInt64Field(buf, at, 2, kv.createRevision);
  at = putInt64Field(buf, at, 3, kv.modRevision);
  at = putInt64Field(buf, at, 4, kv.version);
  at = putBytesField(buf, at, 5, kv.value);
  at = putInt64Field(buf, at, 6, kv.lease);
  at = putNumberField(buf, at, 2, r.sub);
  return putBoolField(buf, at, 3, r.tombstone);
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
