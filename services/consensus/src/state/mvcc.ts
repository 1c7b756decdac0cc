import { create } from "@bufbuild/protobuf";
import { type KeyValue, KeyValueSchema } from "@quartet/proto/quartet/consensus/v1/kv_pb";
import { compactedError, futureRevisionError } from "./errors.ts";
import { inRange, type KeyRange, type KeyString } from "./keys.ts";

/** One version of a key, or its deletion. Records of a key are in (mod_revision, sub) order. */
export interface KeyRecord {
  kv: KeyValue;
  /** Position of the write inside its revision (a Txn's writes share one revision). */
  sub: number;
  tombstone: boolean;
}

/**
 * A multi-version key-value store like etcd's mvcc: every key keeps its versions by revision,
 * so reads can go back to any revision not yet compacted. Revisions are assigned by the caller
 * (the state machine bumps one per write command); the store only records them.
 */
export class MvccStore {
  /** The revision of the last write. */
  revision = 0n;
  /** Reads below this revision fail: their history is gone. */
  compactRevision = 0n;
  private readonly history = new Map<KeyString, KeyRecord[]>();
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
    const recs = this.history.get(key);
    if (recs === undefined) return undefined;
    const r = rev === undefined ? recs[recs.length - 1] : recordAt(recs, rev);
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
    for (const [k, recs] of this.history) {
      let keepFrom = 0;
      for (let i = 0; i < recs.length && recs[i]!.kv.modRevision <= rev; i++) keepFrom = i;
      if (recs[keepFrom]!.kv.modRevision <= rev && recs[keepFrom]!.tombstone) keepFrom++;
      if (keepFrom === 0) continue;
      recs.splice(0, keepFrom);
      if (recs.length === 0) {
        this.history.delete(k);
        emptied.add(k);
      }
    }
    if (emptied.size > 0) this.keys = this.keys.filter((k) => !emptied.has(k));
  }

  /** Every key with its records, in key order (for snapshots). */
  *entries(): Iterable<[KeyString, readonly KeyRecord[]]> {
    for (const k of this.keys) yield [k, this.history.get(k)!];
  }

  /** Restores one key's records (from a snapshot, in key order). */
  load(key: KeyString, records: KeyRecord[]): void {
    this.history.set(key, records);
    this.keys.push(key);
  }

  private append(key: KeyString, rec: KeyRecord): void {
    const recs = this.history.get(key);
    if (recs !== undefined) {
      recs.push(rec);
      return;
    }
    this.history.set(key, [rec]);
    this.keys.splice(lowerBound(this.keys, key), 0, key);
  }
}

function recordAt(recs: readonly KeyRecord[], rev: bigint): KeyRecord | undefined {
  for (let i = recs.length - 1; i >= 0; i--) if (recs[i]!.kv.modRevision <= rev) return recs[i];
  return undefined;
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
