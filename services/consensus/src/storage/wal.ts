import { writevSync } from "node:fs";
import { crc32 } from "node:zlib";

/** The node's Raft state on disk is wrong or incomplete: it must not serve from it. */
export class StorageCorruptError extends Error {
  override name = "StorageCorruptError";
}

/**
 * The write-ahead log's records. Each is `u32 payload length | u32 CRC-32 of (kind, payload)
 * | u8 kind | payload`, written one after another into numbered segment files, so one Ready is
 * one write and one fdatasync, as etcd's WAL (LMDB, used before, paid two syncs and a B-tree's
 * pages per commit: 0.3-0.4 ms on the path of every write, against 0.1 ms for an append and
 * one sync here). A segment is zero-filled ahead of its records (raft-storage.ts says why), so
 * its records end either where the file does or at a header of zeros, which no record has:
 * its CRC-32 field would have to be 0, and the CRC of a zero kind byte is not.
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

/** What is wrong where a segment's records stop before its end. */
export interface BadRecord {
  offset: number;
  reason: string;
  /**
   * Whether it looks like what a write cut short by a crash leaves: a record the file ends
   * inside, one with a sector still zero (the segment is zero-filled ahead of its writes), or
   * bytes past the zero-filled end. Only the last write can be torn, and it was never synced;
   * anything else is damage to what was written.
   */
  torn: boolean;
  kind?: number;
  payload?: Buffer;
}

/**
 * The records of one segment, in order, up to its end: the end of the file, or the zero-filled
 * rest of it. `end` is where the next record goes. `bad` is set when the records stop before
 * that (where, and why); whether it is a torn last write or damage is the caller's to decide,
 * knowing whether this is the last segment, and `torn` says whether it can be the former.
 */
export function readSegment(bytes: Buffer): { records: WalRecord[]; end: number; bad?: BadRecord } {
  const records: WalRecord[] = [];
  let at = 0;
  while (at < bytes.byteLength) {
    if (bytes.byteLength - at < recordHeaderBytes) {
      if (isZero(bytes, at, bytes.byteLength)) return { records, end: at };
      return {
        records,
        end: at,
        bad: { offset: at, reason: "ends inside a record's header", torn: true },
      };
    }
    if (isZero(bytes, at, at + recordHeaderBytes)) {
      if (isZero(bytes, at, bytes.byteLength)) return { records, end: at };
      const reason = "has data after the zero-filled end of its records";
      return { records, end: at, bad: { offset: at, reason, torn: true } };
    }
    const length = bytes.readUInt32BE(at);
    const end = at + recordHeaderBytes + length;
    if (end > bytes.byteLength) {
      return { records, end: at, bad: { offset: at, reason: "ends inside a record", torn: true } };
    }
    const kind = bytes.readUInt8(at + 8);
    const payload = bytes.subarray(at + recordHeaderBytes, end);
    if (bytes.readUInt32BE(at + 4) !== crc32(bytes.subarray(at + 8, end))) {
      const torn = hasZeroSector(bytes, at, end);
      return {
        records,
        end: at,
        bad: { offset: at, reason: "fails its checksum", torn, kind, payload },
      };
    }
    records.push({ kind, payload, offset: at });
    at = end;
  }
  return { records, end: at };
}

/** Disks write whole sectors; the smallest is 512 bytes. */
const sectorBytes = 512;
const zeros = Buffer.alloc(64 * 1024);

/** Writes `bytes` zeros into file `fd` from `at`. */
export function writeZeros(fd: number, at: number, bytes: number): void {
  const chunks: Buffer[] = [];
  for (let n = bytes; n > 0; n -= zeros.byteLength)
    chunks.push(zeros.subarray(0, Math.min(n, zeros.byteLength)));
  writevSync(fd, chunks, at);
}

/** Whether `bytes[from, to)` are all zero. */
function isZero(bytes: Buffer, from: number, to: number): boolean {
  for (let at = from; at < to; at += zeros.byteLength) {
    const n = Math.min(zeros.byteLength, to - at);
    if (!bytes.subarray(at, at + n).equals(zeros.subarray(0, n))) return false;
  }
  return true;
}

/**
 * Whether a sector of the file that holds part of the record at `bytes[from, to)` is zero
 * from the record's start (or the sector's) to the sector's end: a write that did not reach
 * the disk in full leaves the sectors it missed as they were before it, zero-filled past the
 * records already written. (etcd's WAL tells a torn record from a damaged one by the same
 * sign.) A damaged record reads as torn only when the zeros reach past it, i.e. when it is the
 * last record; at the very end of the log it is then cut.
 */
function hasZeroSector(bytes: Buffer, from: number, to: number): boolean {
  for (let sector = from - (from % sectorBytes); sector < to; sector += sectorBytes) {
    if (isZero(bytes, Math.max(sector, from), Math.min(sector + sectorBytes, bytes.byteLength)))
      return true;
  }
  return false;
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
