/**
 * Keys are bytes; the store indexes them as latin1 strings (one char per byte), whose
 * code-unit order is bytewise order, so JS string comparison sorts keys like etcd.
 */
export type KeyString = string;

export function keyString(bytes: Uint8Array): KeyString {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("latin1");
}

export function keyBytes(key: KeyString): Uint8Array {
  return new Uint8Array(Buffer.from(key, "latin1"));
}

/** A key range with etcd's conventions: see {@link keyRange}. */
export interface KeyRange {
  start: KeyString;
  /** Exclusive end; undefined: only `start`; null: no upper bound. */
  end: KeyString | undefined | null;
}

/**
 * Reads `key`/`range_end` as etcd does: an empty end is the single key, "\0" is every key
 * >= key, anything else the half-open interval [key, end).
 */
export function keyRange(key: Uint8Array, rangeEnd: Uint8Array): KeyRange {
  const start = keyString(key);
  if (rangeEnd.byteLength === 0) return { start, end: undefined };
  if (rangeEnd.byteLength === 1 && rangeEnd[0] === 0) return { start, end: null };
  return { start, end: keyString(rangeEnd) };
}

export function inRange(r: KeyRange, k: KeyString): boolean {
  if (r.end === undefined) return k === r.start;
  return k >= r.start && (r.end === null || k < r.end);
}

/** The range end that selects every key with `prefix` (etcd's GetPrefixRangeEnd). */
export function prefixEnd(prefix: Uint8Array): Uint8Array {
  const end = prefix.slice();
  for (let i = end.length - 1; i >= 0; i--) {
    if (end[i]! < 0xff) {
      end[i]!++;
      return end.slice(0, i + 1);
    }
  }
  return new Uint8Array([0]);
}
