import { crc32 } from "node:zlib";
import {
  type ConfState,
  type Entry,
  type HardState,
  MemoryStorage,
  type Snapshot,
  type Storage,
} from "@quartet/raft";
import { type Database, open, type RootDatabase, TransactionFlags } from "lmdb";

/** The node's Raft state on disk is wrong or incomplete: it must not serve from it. */
export class StorageCorruptError extends Error {
  override name = "StorageCorruptError";
}

/** What one `Ready` asks to persist, in the order the Raft contract gives. */
export interface ReadyWrite {
  snapshot?: Snapshot | undefined;
  entries: readonly Entry[];
  hardState?: HardState | undefined;
}

const ENTRY_HEADER = 4 + 8 + 1; // crc32, term, type
const TYPE_CODES = { normal: 0, confChange: 1 } as const;
const HARD_STATE = "hardState";
const SNAPSHOT = "snapshot";
/** The index (and term) the log is compacted up to; below the snapshot's when entries are kept. */
const COMPACTED = "compacted";

/**
 * The Raft log, hard state and latest snapshot of one node, durable in LMDB, in the way etcd
 * pairs its WAL with raft's MemoryStorage: reads are served from memory, every write goes to
 * disk first. One `persist()` per Ready is one LMDB transaction and one fsync, however many
 * entries it carries (group commit); it resolves only once that is on disk, so the caller
 * sends the Ready's acknowledgements and votes after it. Every entry and the snapshot carry
 * a CRC-32 checked on open; a log with a gap, a bad checksum, or a commit index past its last
 * entry makes `open` throw {@link StorageCorruptError} instead of serving wrong data.
 *
 * LMDB (lmdb-js, already used by the broker) gives atomic multi-key transactions and
 * crash-safe commits without a recovery procedure of ours; the checksums add detection of
 * damage below it (a bad disk, a copied or edited file).
 */
export class DurableRaftStorage implements Storage {
  private readonly env: RootDatabase;
  private readonly log: Database<Uint8Array, number>;
  private readonly meta: Database<Uint8Array, string>;
  /** The same state as on disk, for reads: etcd's MemoryStorage beside its WAL. */
  private readonly memory: MemoryStorage;

  private constructor(
    env: RootDatabase,
    log: Database<Uint8Array, number>,
    meta: Database<Uint8Array, string>,
    memory: MemoryStorage,
  ) {
    this.env = env;
    this.log = log;
    this.meta = meta;
    this.memory = memory;
  }

  /**
   * Opens the storage in `dir`, checking everything in it. A new directory is empty (hard
   * state 0, no snapshot): call {@link bootstrap} for a founding member of a new cluster; a
   * member that joins later starts empty and receives a snapshot.
   */
  static open(dir: string): DurableRaftStorage {
    let env: RootDatabase;
    try {
      env = open({ path: dir, compression: false, noSync: false, maxDbs: 4 });
    } catch (e) {
      throw new StorageCorruptError(
        `cannot open the Raft storage in ${dir}: ${(e as Error).message}`,
      );
    }
    const log = env.openDB<Uint8Array, number>({ name: "log", encoding: "binary" });
    const meta = env.openDB<Uint8Array, string>({ name: "meta", encoding: "binary" });
    const memory = load(dir, log, meta);
    return new DurableRaftStorage(env, log, meta, memory);
  }

  /** True when nothing was ever persisted here (a new member). */
  isEmpty(): boolean {
    return this.memory.lastIndex() === 0 && this.memory.getHardState().term === 0;
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
    return this.memory.initialState();
  }
  entries(lo: number, hi: number, maxBytes: number): Entry[] {
    return this.memory.entries(lo, hi, maxBytes);
  }
  term(index: number): number {
    return this.memory.term(index);
  }
  firstIndex(): number {
    return this.memory.firstIndex();
  }
  lastIndex(): number {
    return this.memory.lastIndex();
  }
  snapshot(): Snapshot {
    return this.memory.snapshot();
  }

  /**
   * Persists a Ready's snapshot, entries (replacing any persisted ones from the first new
   * index on) and hard state in one transaction; resolves once it is fsync'd (committed, when
   * `sync` is false: pass the Ready's `mustSync`).
   */
  async persist(write: ReadyWrite, sync = true): Promise<void> {
    const { snapshot, entries, hardState } = write;
    const oldLast = this.memory.lastIndex();
    const oldFirst = this.memory.firstIndex();
    const writeAll = () => {
      if (snapshot) {
        // A snapshot replaces the whole log.
        for (let i = oldFirst; i <= oldLast; i++) void this.log.remove(i);
        void this.meta.put(SNAPSHOT, encodeSnapshot(snapshot));
        void this.meta.put(COMPACTED, encodeJson(snapshot.metadata));
      }
      if (entries.length > 0) {
        const firstNew = Math.max(
          entries[0]!.index,
          snapshot ? snapshot.metadata.index + 1 : oldFirst,
        );
        // Entries after the new ones conflict with them and go (the leader overwrote them).
        for (let i = Math.max(firstNew, entries[entries.length - 1]!.index + 1); i <= oldLast; i++)
          void this.log.remove(i);
        for (const e of entries)
          if (e.index >= firstNew) void this.log.put(e.index, encodeEntry(e));
      }
      if (hardState) void this.meta.put(HARD_STATE, encodeHardState(hardState));
    };
    // Committed on this thread before transactionSync returns: no hand-off to lmdb's writer
    // thread and back, each of which waits for a CPU on a loaded machine, on the path of
    // every commit. With `sync`, fsync'd too (lmdb's default flags: no deferred flush);
    // without (a Ready whose only change is the commit index, which Raft can learn again) it
    // reaches the disk with the next fsync.
    this.env.transactionSync(
      writeAll,
      sync ? undefined : TransactionFlags.SYNCHRONOUS_COMMIT | TransactionFlags.NO_SYNC_FLUSH,
    );
    if (snapshot) this.memory.applySnapshot(snapshot);
    this.memory.append(entries);
    if (hardState) this.memory.setHardState(hardState);
  }

  /**
   * Records a snapshot of the applied state at `index` and drops the entries up to
   * `index - keepEntries` (kept ones let a slightly lagging follower catch up from the log).
   * Durable when it resolves.
   */
  async snapshotAndCompact(
    index: number,
    confState: ConfState,
    data: Uint8Array,
    keepEntries = 0,
  ): Promise<Snapshot> {
    const first = this.memory.firstIndex();
    const term = this.memory.term(index);
    if (index <= this.memory.snapshot().metadata.index || term < 0)
      throw new Error(`snapshotAndCompact(${index}): not an index of the log after the snapshot`);
    const snap: Snapshot = { metadata: { index, term, confState }, data };
    const compactTo = Math.max(first - 1, index - keepEntries);
    const compactTerm = this.memory.term(compactTo);
    await this.env.transaction(() => {
      void this.meta.put(SNAPSHOT, encodeSnapshot(snap));
      void this.meta.put(COMPACTED, encodeJson({ index: compactTo, term: compactTerm }));
      for (let i = first; i <= compactTo; i++) void this.log.remove(i);
    });
    await this.env.flushed;
    this.memory.createSnapshot(index, confState, data);
    this.memory.compact(compactTo);
    return snap;
  }

  async close(): Promise<void> {
    await this.env.close();
  }
}

function load(
  dir: string,
  log: Database<Uint8Array, number>,
  meta: Database<Uint8Array, string>,
): MemoryStorage {
  const memory = new MemoryStorage();
  const snapBytes = meta.getBinary(SNAPSHOT);
  const snap = snapBytes ? decodeSnapshot(dir, snapBytes) : undefined;
  const compactedBytes = meta.getBinary(COMPACTED);
  const compacted = compactedBytes
    ? decodeJson<{ index: number; term: number }>(
        dir,
        "the Raft log's compaction point",
        compactedBytes,
      )
    : snap?.metadata;
  if (snap && compacted) {
    // The log starts after `compacted`; the snapshot (at or after it) is laid over it below.
    memory.applySnapshot({
      metadata: {
        index: compacted.index,
        term: compacted.term,
        confState: snap.metadata.confState,
      },
      data: new Uint8Array(0),
    });
  }
  const entries: Entry[] = [];
  let expected = memory.lastIndex() + 1;
  for (const { key, value } of log.getRange({})) {
    if (key !== expected) {
      throw new StorageCorruptError(
        `the Raft log in ${dir} has a gap: entry ${expected} is missing before ${key}; restore this member from a backup or remove and re-add it`,
      );
    }
    entries.push(decodeEntry(dir, key, value));
    expected++;
  }
  memory.append(entries);
  if (snap && compacted && snap.metadata.index > compacted.index) {
    if (memory.term(snap.metadata.index) !== snap.metadata.term) {
      throw new StorageCorruptError(
        `the Raft snapshot in ${dir} (index ${snap.metadata.index}, term ${snap.metadata.term}) does not match the log it was taken from; restore this member from a backup or remove and re-add it`,
      );
    }
    memory.createSnapshot(snap.metadata.index, snap.metadata.confState, snap.data);
  }
  const hsBytes = meta.getBinary(HARD_STATE);
  if (hsBytes) {
    const hs = decodeHardState(dir, hsBytes);
    if (hs.commit > memory.lastIndex()) {
      throw new StorageCorruptError(
        `the Raft log in ${dir} ends at ${memory.lastIndex()} but entries up to ${hs.commit} were committed: its tail is lost; restore this member from a backup or remove and re-add it`,
      );
    }
    memory.setHardState(hs);
  }
  return memory;
}

function checked(bytes: Uint8Array): Buffer {
  const out = Buffer.alloc(4 + bytes.byteLength);
  out.set(bytes, 4);
  out.writeUInt32BE(crc32(bytes), 0);
  return out;
}

function verified(dir: string, what: string, stored: Uint8Array): Buffer {
  const b = Buffer.from(stored.buffer, stored.byteOffset, stored.byteLength);
  if (b.byteLength < 4 || b.readUInt32BE(0) !== crc32(b.subarray(4))) {
    throw new StorageCorruptError(
      `${what} in ${dir} fails its checksum: the file is damaged; restore this member from a backup or remove and re-add it`,
    );
  }
  return b.subarray(4);
}

function encodeEntry(e: Entry): Buffer {
  const out = Buffer.alloc(ENTRY_HEADER + e.data.byteLength);
  out.writeDoubleBE(e.term, 4);
  out.writeUInt8(TYPE_CODES[e.type], 12);
  out.set(e.data, ENTRY_HEADER);
  out.writeUInt32BE(crc32(out.subarray(4)), 0);
  return out;
}

function decodeEntry(dir: string, index: number, stored: Uint8Array): Entry {
  const b = verified(dir, `Raft log entry ${index}`, stored);
  const code = b.readUInt8(8);
  return {
    index,
    term: b.readDoubleBE(0),
    type: code === TYPE_CODES.confChange ? "confChange" : "normal",
    // A copy: LMDB's buffers are reused by later reads.
    data: new Uint8Array(b.subarray(ENTRY_HEADER - 4)),
  };
}

function encodeHardState(hs: HardState): Buffer {
  return encodeJson({ term: hs.term, vote: hs.vote, commit: hs.commit });
}

function decodeHardState(dir: string, stored: Uint8Array): HardState {
  return decodeJson<HardState>(dir, "the Raft hard state", stored);
}

function encodeJson(value: unknown): Buffer {
  return checked(Buffer.from(JSON.stringify(value)));
}

function decodeJson<T>(dir: string, what: string, stored: Uint8Array): T {
  return JSON.parse(verified(dir, what, stored).toString("utf8")) as T;
}

function encodeSnapshot(s: Snapshot): Buffer {
  const md = Buffer.from(JSON.stringify(s.metadata));
  const body = Buffer.alloc(4 + md.byteLength + s.data.byteLength);
  body.writeUInt32BE(md.byteLength, 0);
  body.set(md, 4);
  body.set(s.data, 4 + md.byteLength);
  return checked(body);
}

function decodeSnapshot(dir: string, stored: Uint8Array): Snapshot {
  const b = verified(dir, "the Raft snapshot", stored);
  const mdLength = b.readUInt32BE(0);
  const metadata = JSON.parse(b.subarray(4, 4 + mdLength).toString("utf8")) as Snapshot["metadata"];
  return { metadata, data: new Uint8Array(b.subarray(4 + mdLength)) };
}
