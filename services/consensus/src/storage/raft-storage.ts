import {
  closeSync,
  existsSync,
  fdatasyncSync,
  fsyncSync,
  ftruncateSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writevSync,
} from "node:fs";
import { open as openFile, rename } from "node:fs/promises";
import { join } from "node:path";
import { crc32 } from "node:zlib";
import {
  type ConfState,
  type Entry,
  emptyConfState,
  type HardState,
  MemoryStorage,
  type Snapshot,
  type Storage,
} from "@quartet/raft";
import { EntryLog, encodeEntry, type RecordPlace, segmentFileReader } from "./entry-log.ts";
import {
  encodeRecord,
  numbers,
  RecordKind,
  readNumber,
  readSegment,
  recordHeaderBytes,
  StorageCorruptError,
  segmentName,
  segmentSeq,
  writeZeros,
} from "./wal.ts";

export { StorageCorruptError };

/** What one `Ready` asks to persist, in the order the Raft contract gives. */
export interface ReadyWrite {
  snapshot?: Snapshot | undefined;
  entries: readonly Entry[];
  hardState?: HardState | undefined;
}

export interface StorageOptions {
  /** A write that would take a segment past this size starts the next one. Default 64 MiB. */
  segmentBytes?: number;
  /** Told when an unfinished last write (never acknowledged) was cut off on open. */
  onRepair?: (message: string) => void;
  /**
   * How many of the newest entries are kept in memory; older ones are read back from the log
   * when Raft asks for them (a follower far behind). Default 1024.
   */
  recentEntries?: number;
  /** How far ahead of its records a segment is zero-filled. Default 1 MiB. */
  zeroAheadBytes?: number;
}
const walDir = (dir: string) => join(dir, "wal");
const snapshotFile = (dir: string, index: number) =>
  join(dir, `snapshot-${index.toString().padStart(16, "0")}.snap`);
const noSnapshot = { index: 0, term: 0 };
const emptySnapshot = (): Snapshot => ({
  metadata: { ...noSnapshot, confState: emptyConfState() },
  data: new Uint8Array(0),
});

/**
 * The Raft log, hard state and snapshots of one node, durable on disk in the way etcd pairs
 * its WAL with raft's MemoryStorage, except that only the newest entries stay in memory
 * ({@link EntryLog}). Every write goes to disk first. One `persist()` per Ready is one append
 * to the write-ahead log and one fdatasync, however many entries it carries (group commit);
 * it resolves only once that is on disk, so
 * the caller sends the Ready's acknowledgements and votes after it. Snapshots are files of
 * their own, written and synced before the log names them. Every record and snapshot carries
 * a CRC-32 checked on open: a log with a gap, a damaged record, or a commit index past its
 * last entry makes `open` throw {@link StorageCorruptError} instead of serving wrong data.
 * An unfinished record at the very end of the log is the one write a crash can tear; it was
 * never synced, so never acknowledged, and is cut off, and `onRepair` says so.
 *
 * A segment is zero-filled a little ahead of its records, and records are written over the
 * zeros. An fdatasync that follows an append to the end of a file must also write the file's
 * inode (its size changed), one more synchronous write for every Ready; over blocks already
 * written it has only the data to flush. Three storages persisting Readies of 10 KB at once
 * on this project's ext4 disk (`npm run bench -- wal-sync`): 0.62-0.67x the time per Ready of
 * appending; etcd's `fallocate`d segments, whose blocks are allocated but marked unwritten,
 * gain less (0.87-0.98x of a bare append). BENCHMARKS.md (kv) has what it does to a
 * put.
 */
export class DurableRaftStorage implements Storage {
  private readonly dir: string;
  private hardState: HardState;
  private snap: Snapshot;
  private readonly log: EntryLog;
  private readonly segmentBytes: number;
  /** The log's segments, oldest first, with the highest entry index each holds. */
  private readonly segments: { seq: number; lastEntry: number }[];
  private fd: number;
  /** Where the next record goes in the current segment. */
  private written: number;
  /** The current segment's length: zeros from `written` on. */
  private zeroedTo: number;
  /** Where the current segment's own records start, after what rotate() put first. */
  private headBytes = 0;
  private readonly zeroAheadBytes: number;
  /** The log is compacted up to here (entries at or below it are in the snapshot). */
  private compactedAt: { index: number; term: number };

  private constructor(dir: string, loaded: Loaded, segmentBytes: number, zeroAheadBytes: number) {
    this.dir = dir;
    this.hardState = loaded.hardState;
    this.snap = loaded.snapshot;
    this.log = loaded.log;
    this.segments = loaded.segments;
    this.compactedAt = loaded.compacted;
    this.segmentBytes = segmentBytes;
    this.zeroAheadBytes = zeroAheadBytes;
    const path = join(walDir(dir), segmentName(this.segments.at(-1)!.seq));
    // Not "a": appending ignores the position each write is given.
    this.fd = openSync(path, "r+");
    this.written = loaded.end;
    this.zeroedTo = statSync(path).size;
  }

  /**
   * Opens the storage in `dir`, checking everything in it. A new directory is empty (hard
   * state 0, no snapshot): call {@link bootstrap} for a founding member of a new cluster; a
   * member that joins later starts empty and receives a snapshot.
   */
  static open(dir: string, options: StorageOptions = {}): DurableRaftStorage {
    if (existsSync(join(dir, "data.mdb")) && !existsSync(walDir(dir))) {
      throw new StorageCorruptError(
        `${dir} holds a member's data in the format of an earlier Quartet (LMDB): start this member on a new directory and add it again, or start the suite with --fresh`,
      );
    }
    mkdirSync(walDir(dir), { recursive: true });
    const loaded = load(dir, options.onRepair ?? (() => {}), options.recentEntries ?? 1024);
    if (loaded.segments.length === 0) {
      writeSegment(dir, 1, []);
      loaded.segments.push({ seq: 1, lastEntry: 0 });
    }
    return new DurableRaftStorage(
      dir,
      loaded,
      options.segmentBytes ?? 64 * 1024 * 1024,
      options.zeroAheadBytes ?? 1024 * 1024,
    );
  }

  /** Bytes the log and snapshots take on disk (Status reports it as the member's db size). */
  static sizeOnDisk(dir: string): number {
    let bytes = 0;
    for (const d of [dir, walDir(dir)]) {
      let names: string[] = [];
      try {
        names = readdirSync(d);
      } catch {}
      for (const name of names) {
        if (!name.endsWith(".wal") && !name.endsWith(".snap")) continue;
        try {
          bytes += statSync(join(d, name)).size;
        } catch {}
      }
    }
    return bytes;
  }

  /** True when nothing was ever persisted here (a new member). */
  isEmpty(): boolean {
    return this.log.lastIndex() === 0 && this.hardState.term === 0;
  }

  /**
   * Makes an empty storage the start of a new cluster, as `MemoryStorage.bootstrap` does: the
   * membership as a snapshot at index 1, term 1, with `data` as the initial state.
   */
  async bootstrap(confState: Partial<ConfState> & { voters: number[] }, data?: Uint8Array) {
    if (!this.isEmpty()) throw new Error("bootstrap: the storage already holds a log");
    const boot = MemoryStorage.bootstrap(confState, data);
    await this.persist({ snapshot: boot.snapshot(), entries: [], hardState: boot.getHardState() });
  }

  initialState(): { hardState: HardState; confState: ConfState } {
    return { hardState: { ...this.hardState }, confState: this.snap.metadata.confState };
  }
  entries(lo: number, hi: number, maxBytes: number): Entry[] {
    return this.log.entries(lo, hi, maxBytes);
  }
  term(index: number): number {
    return this.log.term(index);
  }
  firstIndex(): number {
    return this.log.firstIndex();
  }
  lastIndex(): number {
    return this.log.lastIndex();
  }
  snapshot(): Snapshot {
    return this.snap;
  }

  /**
   * Persists a Ready's snapshot, entries (replacing any persisted ones from the first new
   * index on) and hard state in one append; resolves once it is fdatasync'd (only written,
   * when `sync` is false: pass the Ready's `mustSync`; a Ready whose only change is the commit
   * index, which Raft can learn again, reaches the disk with the next sync).
   */
  async persist(write: ReadyWrite, sync = true): Promise<void> {
    const { snapshot, entries, hardState } = write;
    const previousSnapshot = this.snap.metadata.index;
    if (snapshot && snapshot.metadata.index < previousSnapshot)
      throw new Error(
        `persist: snapshot at ${snapshot.metadata.index} is older than ${previousSnapshot}`,
      );
    if (snapshot) await writeSnapshotFile(this.dir, snapshot);
    const records: Buffer[] = [];
    if (snapshot) {
      const { index, term } = snapshot.metadata;
      records.push(encodeRecord(RecordKind.snapshot, numbers(index, term, 1)));
    }
    const firstEntry = records.length;
    for (const e of entries) records.push(encodeEntry(e));
    if (hardState) records.push(encodeHardState(hardState));
    const at = records.length > 0 ? this.append(records, sync) : undefined;
    if (snapshot) {
      this.snap = snapshot;
      this.log.reset(snapshot.metadata);
      this.compactedAt = { index: snapshot.metadata.index, term: snapshot.metadata.term };
      this.dropSnapshotFile(previousSnapshot);
      this.dropSegments();
    }
    if (at !== undefined && entries.length > 0) {
      let offset = at.offset;
      for (let i = 0; i < firstEntry; i++) offset += records[i]!.byteLength;
      const places: RecordPlace[] = [];
      for (let i = 0; i < entries.length; i++) {
        const length = records[firstEntry + i]!.byteLength;
        places.push({ seq: at.seq, offset, length });
        offset += length;
      }
      this.log.append(entries, places);
    }
    if (hardState)
      this.hardState = { term: hardState.term, vote: hardState.vote, commit: hardState.commit };
    if (entries.length > 0) {
      const seg = this.segments.at(-1)!;
      seg.lastEntry = Math.max(seg.lastEntry, entries.at(-1)!.index);
    }
  }

  /**
   * Records a snapshot of the applied state at `index` and drops the entries up to
   * `index - keepEntries` (kept ones let a slightly lagging follower catch up from the log).
   * Durable when it resolves. Both steps at once: {@link prepareSnapshot}, then
   * {@link commitSnapshot}.
   */
  async snapshotAndCompact(
    index: number,
    confState: ConfState,
    data: Uint8Array,
    keepEntries = 0,
  ): Promise<Snapshot> {
    const snap = await this.prepareSnapshot(index, confState, Promise.resolve(data));
    this.commitSnapshot(snap, keepEntries);
    return snap;
  }

  /**
   * The first step of a snapshot of the applied state at `index`, which may run while Readies
   * are persisted: the snapshot's file, written and synced, but not yet named by the log (a
   * crash now leaves the log as it was). `data` may still be being encoded; its term is read
   * at the call, while the log holds `index`.
   */
  async prepareSnapshot(
    index: number,
    confState: ConfState,
    data: Promise<Uint8Array>,
  ): Promise<Snapshot> {
    const term = this.log.term(index);
    const previous = this.snap.metadata.index;
    if (index <= previous || term < 0)
      throw new Error(`a snapshot at ${index}: not an index of the log after the snapshot`);
    const snap: Snapshot = { metadata: { index, term, confState }, data: await data };
    await writeSnapshotFile(this.dir, snap);
    return snap;
  }

  /**
   * The second step, between Readies: the log names the prepared snapshot (one record and one
   * sync) and drops the entries up to `index - keepEntries`. A snapshot the log has moved past
   * meanwhile (one the leader sent) is discarded instead; returns whether it was recorded.
   */
  commitSnapshot(snap: Snapshot, keepEntries = 0): boolean {
    const { index, term } = snap.metadata;
    const previous = this.snap.metadata.index;
    if (index <= previous) {
      rmSync(snapshotFile(this.dir, index), { force: true });
      return false;
    }
    if (this.log.term(index) !== term)
      throw new Error(
        `commitSnapshot(${index}): the log no longer holds entry ${index} of term ${term}`,
      );
    const compactTo = Math.max(this.log.firstIndex() - 1, index - keepEntries);
    const compactTerm = this.log.term(compactTo);
    this.append(
      [
        encodeRecord(RecordKind.snapshot, numbers(index, term, 0)),
        encodeRecord(RecordKind.compacted, numbers(compactTo, compactTerm)),
      ],
      true,
    );
    this.snap = snap;
    this.log.compact(compactTo);
    this.compactedAt = { index: compactTo, term: compactTerm };
    this.dropSnapshotFile(previous);
    this.dropSegments();
    return true;
  }

  async close(): Promise<void> {
    if (this.fd < 0) return;
    fdatasyncSync(this.fd);
    closeSync(this.fd);
    this.fd = -1;
  }

  /**
   * One write (and with `sync`, one fdatasync) for all of `records`. Returns where the first
   * one starts.
   */
  private append(records: Buffer[], sync: boolean): { seq: number; offset: number } {
    let bytes = 0;
    for (const r of records) bytes += r.byteLength;
    // A write that does not fit goes to the next segment, unless this one has no records of
    // its own yet (it would not fit there either).
    if (this.written + bytes > this.segmentBytes && this.written > this.headBytes) this.rotate();
    const at = { seq: this.segments.at(-1)!.seq, offset: this.written };
    writevSync(this.fd, records, this.written);
    this.written += bytes;
    if (sync) fdatasyncSync(this.fd);
    this.zeroAhead();
    return at;
  }

  /**
   * Zero-fills the next stretch of the segment once the records come within half of it of the
   * end (a write past the end still works, as an append). Not synced here: the next sync
   * carries it, so one Ready's sync in every megabyte or so flushes the zeros too.
   */
  private zeroAhead(): void {
    if (this.written + this.zeroAheadBytes / 2 <= this.zeroedTo) return;
    const from = Math.max(this.zeroedTo, this.written);
    const bytes = Math.min(this.zeroAheadBytes, this.segmentBytes - from);
    if (bytes <= 0) return;
    writeZeros(this.fd, from, bytes);
    this.zeroedTo = from + bytes;
  }

  /**
   * Starts the next segment with the state a reader needs to start there (hard state, current
   * snapshot, compaction point), so older segments can be deleted once compacted.
   */
  private rotate(): void {
    fdatasyncSync(this.fd);
    closeSync(this.fd);
    const seq = this.segments.at(-1)!.seq + 1;
    const snap = this.snap.metadata;
    const head = [
      encodeHardState(this.hardState),
      encodeRecord(RecordKind.snapshot, numbers(snap.index, snap.term, 0)),
      encodeRecord(RecordKind.compacted, numbers(this.compactedAt.index, this.compactedAt.term)),
    ];
    writeSegment(this.dir, seq, head);
    this.segments.push({ seq, lastEntry: 0 });
    this.fd = openSync(join(walDir(this.dir), segmentName(seq)), "r+");
    this.written = head.reduce((n, b) => n + b.byteLength, 0);
    this.headBytes = this.written;
    this.zeroedTo = this.written;
  }

  /** Deletes the oldest segments whose entries are all compacted (never the current one). */
  private dropSegments(): void {
    while (this.segments.length > 1 && this.segments[0]!.lastEntry <= this.compactedAt.index) {
      const seg = this.segments.shift()!;
      rmSync(join(walDir(this.dir), segmentName(seg.seq)), { force: true });
    }
  }

  private dropSnapshotFile(index: number): void {
    if (index > 0 && index !== this.snap.metadata.index)
      rmSync(snapshotFile(this.dir, index), { force: true });
  }
}

interface Loaded {
  hardState: HardState;
  snapshot: Snapshot;
  log: EntryLog;
  segments: { seq: number; lastEntry: number }[];
  compacted: { index: number; term: number };
  /** Where the last segment's records end (after any repair). */
  end: number;
}

/** An entry record found on open: its index, its term and where it is. */
interface FoundEntry {
  index: number;
  term: number;
  place: RecordPlace;
}

/** Replays the segments in order, then checks that what they describe is whole. */
function load(dir: string, onRepair: (message: string) => void, recentEntries: number): Loaded {
  const names = readdirSync(walDir(dir))
    .map((name) => ({ name, seq: segmentSeq(name) }))
    .filter((s): s is { name: string; seq: number } => s.seq !== undefined)
    .sort((a, b) => a.seq - b.seq);
  const segments: Loaded["segments"] = [];
  let entries: FoundEntry[] = [];
  let hardState: HardState = { term: 0, vote: 0, commit: 0 };
  let snap = noSnapshot;
  let base = noSnapshot;
  let end = 0;
  names.forEach(({ name, seq }, i) => {
    const path = join(walDir(dir), name);
    const bytes = readFileSync(path);
    const { records, bad, end: recordsEnd } = readSegment(bytes);
    end = recordsEnd;
    let lastEntry = 0;
    for (const r of records) {
      const p = r.payload;
      switch (r.kind) {
        case RecordKind.entry: {
          const index = readNumber(p, 0);
          while (entries.length > 0 && entries.at(-1)!.index >= index) entries.pop();
          const place = { seq, offset: r.offset, length: recordHeaderBytes + p.byteLength };
          entries.push({ index, term: readNumber(p, 1), place });
          lastEntry = Math.max(lastEntry, index);
          break;
        }
        case RecordKind.hardState:
          hardState = {
            term: readNumber(p, 0),
            vote: readNumber(p, 1),
            commit: readNumber(p, 2),
          };
          break;
        case RecordKind.snapshot:
          snap = { index: readNumber(p, 0), term: readNumber(p, 1) };
          if (readNumber(p, 2) === 1) {
            base = snap;
            entries = [];
          }
          break;
        case RecordKind.compacted:
          if (readNumber(p, 0) > base.index)
            base = { index: readNumber(p, 0), term: readNumber(p, 1) };
          break;
        default:
          throw new StorageCorruptError(
            `${path} holds a record of unknown kind ${r.kind} at byte ${r.offset}: the file is damaged; restore this member from a backup or remove and re-add it`,
          );
      }
    }
    if (bad) {
      if (i === names.length - 1 && bad.torn) {
        // At the end of the last segment: the last write, cut short by a crash before its
        // sync returned, so never acknowledged.
        // What it wrote: up to the last byte that is not zero-filled space.
        let written = bytes.byteLength;
        while (written > bad.offset && bytes[written - 1] === 0) written--;
        const fd = openSync(path, "r+");
        try {
          ftruncateSync(fd, bad.offset);
          fdatasyncSync(fd);
        } finally {
          closeSync(fd);
        }
        onRepair(
          `cut off an unfinished write at the end of the Raft log (${path}, ${written - bad.offset} bytes from byte ${bad.offset}); it was never acknowledged`,
        );
      } else {
        const what =
          bad.kind === RecordKind.entry && bad.payload && bad.payload.byteLength >= 16
            ? `Raft log entry ${readNumber(bad.payload, 0)}`
            : `the Raft log record at byte ${bad.offset}`;
        throw new StorageCorruptError(
          `${what} in ${path} ${bad.reason}: the file is damaged; restore this member from a backup or remove and re-add it`,
        );
      }
    }
    segments.push({ seq, lastEntry });
  });

  const snapshot = snap.index > 0 ? readSnapshotFile(dir, snap) : undefined;
  entries = entries.filter((e) => e.index > base.index);
  let expected = base.index + 1;
  for (const e of entries) {
    if (e.index !== expected) {
      throw new StorageCorruptError(
        `the Raft log in ${dir} has a gap: entry ${expected} is missing before ${e.index}; restore this member from a backup or remove and re-add it`,
      );
    }
    expected++;
  }
  // The log starts after `base`; a snapshot taken later (entries kept before it) must match it.
  const log = new EntryLog(
    base,
    recentEntries,
    segmentFileReader((seq) => join(walDir(dir), segmentName(seq))),
  );
  for (const e of entries) log.appendFound(e.index, e.term, e.place);
  if (snapshot && snapshot.metadata.index > base.index) {
    if (log.term(snapshot.metadata.index) !== snapshot.metadata.term) {
      throw new StorageCorruptError(
        `the Raft snapshot in ${dir} (index ${snapshot.metadata.index}, term ${snapshot.metadata.term}) does not match the log it was taken from; restore this member from a backup or remove and re-add it`,
      );
    }
  }
  if (hardState.commit > log.lastIndex()) {
    throw new StorageCorruptError(
      `the Raft log in ${dir} ends at ${log.lastIndex()} but entries up to ${hardState.commit} were committed: its tail is lost; restore this member from a backup or remove and re-add it`,
    );
  }
  return {
    hardState,
    snapshot: snapshot ?? emptySnapshot(),
    log,
    segments,
    compacted: base,
    end,
  };
}

/** A new segment holding `records`, synced, its name synced into the directory. */
function writeSegment(dir: string, seq: number, records: Buffer[]): void {
  const fd = openSync(join(walDir(dir), segmentName(seq)), "wx");
  if (records.length > 0) writevSync(fd, records);
  fdatasyncSync(fd);
  closeSync(fd);
  syncDir(walDir(dir));
}

function syncDir(dir: string): void {
  const fd = openSync(dir, "r");
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/**
 * Written beside, synced, renamed into place, and the directory synced: whole or absent. The
 * state goes to disk a slice at a time, each synced before the next: ext4 writes out a file's
 * pending data whenever an fsync commits the journal, so tens of megabytes written at once
 * would hold up the log's own syncs (every acknowledged write) until they were all on disk.
 */
async function writeSnapshotFile(dir: string, s: Snapshot): Promise<void> {
  const md = Buffer.from(JSON.stringify(s.metadata));
  const head = Buffer.allocUnsafe(8 + md.byteLength);
  head.writeUInt32BE(md.byteLength, 4);
  head.set(md, 8);
  let crc = crc32(head.subarray(4));
  const path = snapshotFile(dir, s.metadata.index);
  const file = await openFile(`${path}.tmp`, "w");
  try {
    let at = head.byteLength;
    for (let from = 0; from < s.data.byteLength; from += snapshotSliceBytes) {
      const slice = s.data.subarray(from, from + snapshotSliceBytes);
      crc = crc32(slice, crc);
      await file.write(slice, 0, slice.byteLength, at);
      at += slice.byteLength;
      await file.datasync();
    }
    // The checksum covers everything after it, so the head goes last.
    head.writeUInt32BE(crc, 0);
    await file.write(head, 0, head.byteLength, 0);
    await file.datasync();
  } finally {
    await file.close();
  }
  await rename(`${path}.tmp`, path);
  syncDir(dir);
}

/**
 * How much of a snapshot is written before each sync: the log's own syncs (every write a
 * client waits for) share the disk's journal with it, and wait for at most one slice. With
 * 1 MiB slices, put-64 ran about 4% slower than with 256 KiB ones (BENCHMARKS.md, kv).
 */
const snapshotSliceBytes = 256 * 1024;

function readSnapshotFile(dir: string, at: { index: number; term: number }): Snapshot {
  const path = snapshotFile(dir, at.index);
  let b: Buffer;
  try {
    b = readFileSync(path);
  } catch {
    throw new StorageCorruptError(
      `the Raft snapshot at index ${at.index} that the log names is missing (${path}): restore this member from a backup or remove and re-add it`,
    );
  }
  if (b.byteLength < 8 || b.readUInt32BE(0) !== crc32(b.subarray(4))) {
    throw new StorageCorruptError(
      `the Raft snapshot in ${path} fails its checksum: the file is damaged; restore this member from a backup or remove and re-add it`,
    );
  }
  const mdLength = b.readUInt32BE(4);
  const metadata = JSON.parse(b.subarray(8, 8 + mdLength).toString("utf8")) as Snapshot["metadata"];
  if (metadata.index !== at.index || metadata.term !== at.term) {
    throw new StorageCorruptError(
      `the Raft snapshot in ${path} is at index ${metadata.index}, term ${metadata.term}, not the ${at.index}, ${at.term} the log names: restore this member from a backup or remove and re-add it`,
    );
  }
  return { metadata, data: new Uint8Array(b.subarray(8 + mdLength)) };
}

function encodeHardState(hs: HardState): Buffer {
  return encodeRecord(RecordKind.hardState, numbers(hs.term, hs.vote, hs.commit));
}
