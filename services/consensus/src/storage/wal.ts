import { crc32 } from "node:zlib";

/** The node's Raft state on disk is wrong or incomplete: it must not serve from it. */
export class StorageCorruptError extends Error {
  override name = "StorageCorruptError";
}

/**
 * The write-ahead log's records. Each is `u32 payload length | u32 CRC-32 of (kind, payload)
 * | u8 kind | payload`, appended to numbered segment files, so one Ready is one write and one
 * fdatasync, as etcd's WAL (LMDB, used before, paid two syncs and a B-tree's pages per commit:
 * 0.3-0.4 ms on the path of every write, against 0.1 ms for an append and one sync here).
 */
export const RecordKind = {
  /** A log entry: index, term, entry type, data. An entry at index i replaces any from i on. */
  entry: 1,
  /** The hard state (term, vote, commit): the last one read wins. */
  hardState: 2,
  /**
   * A snapshot file (index, term) is durable and current; `resets` when it came from the
   * leader and replaces the whole log.
   */
  snapshot: 3,
  /** Entries up to index (of term) are covered by the snapshot and dropped. */
  compacted: 4,
} as const;

export type RecordKindCode = (typeof RecordKind)[keyof typeof RecordKind];

export const recordHeaderBytes = 9;

export interface WalRecord {
  kind: number;
  payload: Buffer;
  /** Where the record starts in its segment. */
  offset: number;
}

export function encodeRecord(kind: RecordKindCode, payload: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(recordHeaderBytes + payload.byteLength);
  out.writeUInt32BE(payload.byteLength, 0);
  out.writeUInt8(kind, 8);
  out.set(payload, recordHeaderBytes);
  out.writeUInt32BE(crc32(out.subarray(8)), 4);
  return out;
}

/**
 * The records of one segment, in order, up to the first that is incomplete or fails its
 * checksum (`bad`: where, and why). Whether that is a torn last write or damage is the
 * caller's to decide: it knows whether anything valid follows.
 */
export function readSegment(bytes: Buffer): {
  records: WalRecord[];
  bad?: { offset: number; reason: string; kind?: number; payload?: Buffer };
} {
  const records: WalRecord[] = [];
  let at = 0;
  while (at < bytes.byteLength) {
    if (bytes.byteLength - at < recordHeaderBytes) {
      return { records, bad: { offset: at, reason: "ends inside a record's header" } };
    }
    const length = bytes.readUInt32BE(at);
    const end = at + recordHeaderBytes + length;
    if (end > bytes.byteLength) {
      return { records, bad: { offset: at, reason: "ends inside a record" } };
    }
    const kind = bytes.readUInt8(at + 8);
    const payload = bytes.subarray(at + recordHeaderBytes, end);
    if (bytes.readUInt32BE(at + 4) !== crc32(bytes.subarray(at + 8, end))) {
      return { records, bad: { offset: at, reason: "fails its checksum", kind, payload } };
    }
    records.push({ kind, payload, offset: at });
    at = end;
  }
  return { records };
}

/** Fixed-width numbers: indexes and terms stay below 2^53, exact in a double. */
export function numbers(...values: number[]): Buffer {
  const out = Buffer.allocUnsafe(8 * values.length);
  for (const [i, v] of values.entries()) out.writeDoubleBE(v, 8 * i);
  return out;
}

export function readNumber(payload: Buffer, i: number): number {
  return payload.readDoubleBE(8 * i);
}

/** Segment file names sort in the order they were written. */
export function segmentName(seq: number): string {
  return `${seq.toString().padStart(16, "0")}.wal`;
}

export function segmentSeq(name: string): number | undefined {
  const m = /^(\d{16})\.wal$/.exec(name);
  return m ? Number(m[1]) : undefined;
}
