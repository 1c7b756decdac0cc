import { spawn } from "node:child_process";
import {
  appendFileSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  truncateSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomInt, seededRandom } from "@quartet/determinism";
import { type Entry, MemoryStorage } from "@quartet/raft";
import { afterEach, describe, expect, it } from "vitest";
import { DurableRaftStorage, StorageCorruptError } from "../src/storage/raft-storage.ts";
import { RecordKind, readNumber, readSegment, type WalRecord } from "../src/storage/wal.ts";
import { damageEntry, overwrite } from "./support/damage.ts";

const dirs: string[] = [];
function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), "quartet-raft-storage-"));
  dirs.push(d);
  return d;
}
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

const entry = (index: number, term: number, text = `v${index}`): Entry => ({
  index,
  term,
  type: "normal",
  data: new TextEncoder().encode(text),
});
const range = (lo: number, hi: number, term: number) =>
  Array.from({ length: hi - lo + 1 }, (_, i) => entry(lo + i, term));

/** The one log segment of a storage written with default settings. */
function onlySegment(dir: string): string {
  const names = readdirSync(join(dir, "wal")).filter((n) => n.endsWith(".wal"));
  expect(names).toHaveLength(1);
  return join(dir, "wal", names[0]!);
}

/** A storage of 2 KB segments holding entries 2-201 (term 1, all committed), still open. */
async function grownLog(dir: string): Promise<DurableRaftStorage> {
  const s = DurableRaftStorage.open(dir, { segmentBytes: 2048 });
  await s.bootstrap({ voters: [1] });
  for (let i = 2; i <= 200; i += 10) {
    await s.persist({
      entries: range(i, i + 9, 1),
      hardState: { term: 1, vote: 1, commit: i + 9 },
    });
  }
  return s;
}

/** The entry index of a log record, or undefined for other records. */
const entryIndex = (r: WalRecord) =>
  r.kind === RecordKind.entry ? readNumber(r.payload, 0) : undefined;

/**
 * Rewrites a closed storage's log, as a damaged disk or a bad copy would: `fn` gets each
 * record's bytes and returns what to write instead (nothing: the record is gone).
 */
function tamper(dir: string, fn: (record: WalRecord, bytes: Buffer) => Buffer | undefined) {
  const path = onlySegment(dir);
  const file = readFileSync(path);
  const { records } = readSegment(file);
  const out: Buffer[] = [];
  records.forEach((r, i) => {
    const end = records[i + 1]?.offset ?? file.byteLength;
    const replaced = fn(r, Buffer.from(file.subarray(r.offset, end)));
    if (replaced) out.push(replaced);
  });
  writeFileSync(path, Buffer.concat(out));
}

describe("DurableRaftStorage", () => {
  it("gives back after a reopen what was persisted: snapshot, entries and hard state", async () => {
    const dir = tempDir();
    const s = DurableRaftStorage.open(dir);
    expect(s.isEmpty()).toBe(true);
    await s.bootstrap({ voters: [1, 2, 3] });
    await s.persist({ entries: range(2, 10, 2), hardState: { term: 2, vote: 1, commit: 8 } });
    await s.close();

    const again = DurableRaftStorage.open(dir);
    expect(again.isEmpty()).toBe(false);
    expect(again.initialState()).toEqual({
      hardState: { term: 2, vote: 1, commit: 8 },
      confState: expect.objectContaining({ voters: [1, 2, 3] }),
    });
    expect([again.firstIndex(), again.lastIndex(), again.term(1), again.term(5)]).toEqual([
      2, 10, 1, 2,
    ]);
    expect(again.entries(2, 11, Number.POSITIVE_INFINITY)).toEqual(range(2, 10, 2));
    await again.close();
  });

  it("replaces a conflicting tail: entries after the new ones are gone on disk too", async () => {
    const dir = tempDir();
    const s = DurableRaftStorage.open(dir);
    await s.bootstrap({ voters: [1] });
    await s.persist({ entries: range(2, 10, 1) });
    await s.persist({ entries: [entry(6, 2, "new6"), entry(7, 2, "new7")] });
    expect(s.lastIndex()).toBe(7);
    await s.close();
    const again = DurableRaftStorage.open(dir);
    expect(again.lastIndex()).toBe(7);
    expect(again.entries(5, 8, Number.POSITIVE_INFINITY).map((e) => [e.index, e.term])).toEqual([
      [5, 1],
      [6, 2],
      [7, 2],
    ]);
    await again.close();
  });

  it("prepares a snapshot beside new writes, and records it only if the log has not moved past it", async () => {
    const dir = tempDir();
    const s = DurableRaftStorage.open(dir);
    await s.bootstrap({ voters: [1] });
    await s.persist({ entries: range(2, 20, 1), hardState: { term: 1, vote: 1, commit: 20 } });
    const conf = s.initialState().confState;
    let encoded: (bytes: Uint8Array) => void = () => {};
    const prepared = s.prepareSnapshot(15, conf, new Promise((r) => (encoded = r)));
    // Entries keep coming while the state is encoded and its file written.
    await s.persist({ entries: range(21, 25, 1), hardState: { term: 1, vote: 1, commit: 25 } });
    encoded(new TextEncoder().encode("state@15"));
    const snap = await prepared;
    // Written but not yet named by the log: a crash now leaves the log as it was.
    const meanwhile = DurableRaftStorage.open(dir);
    expect([meanwhile.snapshot().metadata.index, meanwhile.lastIndex()]).toEqual([1, 25]);
    await meanwhile.close();
    expect(s.commitSnapshot(snap, 3)).toBe(true);
    await s.close();
    const again = DurableRaftStorage.open(dir);
    expect(new TextDecoder().decode(again.snapshot().data)).toBe("state@15");
    expect([again.firstIndex(), again.lastIndex()]).toEqual([13, 25]);
    // A state of several megabytes goes to disk in slices and reads back whole.
    const large = new Uint8Array(2.5 * (1 << 20)).map((_, i) => (i * 7919) % 251);
    await again.snapshotAndCompact(22, conf, large);
    await again.close();
    const reopened = DurableRaftStorage.open(dir);
    // (Compared as bytes: a deep equality of 2.6 million elements took 5 s.)
    expect(Buffer.compare(reopened.snapshot().data, large)).toBe(0);
    await reopened.close();
    // One prepared while the leader's snapshot replaced the log is dropped, file and all.
    const last = DurableRaftStorage.open(dir);
    const stale = await last.prepareSnapshot(24, conf, Promise.resolve(new Uint8Array([1])));
    await last.persist({
      snapshot: { metadata: { index: 30, term: 3, confState: conf }, data: new Uint8Array([7]) },
      entries: [],
      hardState: { term: 3, vote: 0, commit: 30 },
    });
    expect(last.commitSnapshot(stale)).toBe(false);
    expect(readdirSync(dir).filter((f) => f.endsWith(".snap"))).toEqual([
      "snapshot-0000000000000030.snap",
    ]);
    await last.close();
    const third = DurableRaftStorage.open(dir);
    expect(third.snapshot().metadata.index).toBe(30);
    await third.close();
  });

  it("takes a snapshot and compacts, keeping the entries asked for, durably", async () => {
    const dir = tempDir();
    const s = DurableRaftStorage.open(dir);
    await s.bootstrap({ voters: [1] });
    await s.persist({ entries: range(2, 20, 1), hardState: { term: 1, vote: 1, commit: 20 } });
    const conf = s.initialState().confState;
    await s.snapshotAndCompact(15, conf, new TextEncoder().encode("state@15"), 3);
    await expect(s.snapshotAndCompact(15, conf, new Uint8Array())).rejects.toThrow(/not an index/);
    await s.close();
    const again = DurableRaftStorage.open(dir);
    expect(again.snapshot().metadata.index).toBe(15);
    expect(new TextDecoder().decode(again.snapshot().data)).toBe("state@15");
    expect([again.firstIndex(), again.lastIndex()]).toEqual([13, 20]);
    // A snapshot received from a leader replaces the whole log.
    await again.persist({
      snapshot: { metadata: { index: 30, term: 3, confState: conf }, data: new Uint8Array([7]) },
      entries: [],
      hardState: { term: 3, vote: 0, commit: 30 },
    });
    await again.close();
    const third = DurableRaftStorage.open(dir);
    expect([third.firstIndex(), third.lastIndex(), third.term(30)]).toEqual([31, 30, 3]);
    await third.close();
  });

  it("refuses to open a log whose entry fails its checksum, naming the entry", async () => {
    const dir = tempDir();
    const s = DurableRaftStorage.open(dir);
    await s.bootstrap({ voters: [1] });
    await s.persist({ entries: range(2, 6, 1), hardState: { term: 1, vote: 1, commit: 6 } });
    await s.close();
    tamper(dir, (r, bytes) => {
      if (entryIndex(r) === 4) bytes[bytes.length - 1]! ^= 0xff;
      return bytes;
    });
    expect(() => DurableRaftStorage.open(dir)).toThrow(StorageCorruptError);
    expect(() => DurableRaftStorage.open(dir)).toThrow(/entry 4 .*fails its checksum/);
  });

  it("serves entries it no longer keeps in memory from the log, as a MemoryStorage given the same writes would", async () => {
    const dir = tempDir();
    // Four entries in memory and small segments: most reads below go to disk, across segments.
    const s = DurableRaftStorage.open(dir, { recentEntries: 4, segmentBytes: 1024 });
    const reference = MemoryStorage.bootstrap({ voters: [1] });
    await s.bootstrap({ voters: [1] });
    const random = seededRandom(14);
    const write = async (entries: Entry[]) => {
      await s.persist({ entries });
      reference.append(entries);
    };
    for (let i = 2; i <= 120; ) {
      const n = 1 + randomInt(random, 9);
      await write(
        range(i, i + n - 1, 1).map((e) => entry(e.index, 1, "x".repeat(randomInt(random, 60)))),
      );
      i += n;
    }
    // A new leader's entries replace a tail that reaches into what is only on disk.
    await write(range(90, 130, 2));
    expect(readdirSync(join(dir, "wal")).length).toBeGreaterThan(3);
    const check = (store: DurableRaftStorage) => {
      expect([store.firstIndex(), store.lastIndex()]).toEqual([2, 130]);
      for (let i = 1; i <= 131; i++) expect(store.term(i)).toBe(reference.term(i));
      for (let k = 0; k < 200; k++) {
        const lo = 2 + randomInt(random, 129);
        const hi = lo + 1 + randomInt(random, 131 - lo);
        const maxBytes =
          randomInt(random, 3) === 0 ? Number.POSITIVE_INFINITY : randomInt(random, 400);
        expect(store.entries(lo, hi, maxBytes)).toEqual(reference.entries(lo, hi, maxBytes));
      }
    };
    check(s);
    await s.close();
    const again = DurableRaftStorage.open(dir, { recentEntries: 4, segmentBytes: 1024 });
    check(again);
    await again.close();
  });

  it("refuses to serve an entry whose record was damaged on disk after it was written, naming it", async () => {
    const dir = tempDir();
    const s = DurableRaftStorage.open(dir, { recentEntries: 2 });
    await s.bootstrap({ voters: [1] });
    await s.persist({ entries: range(2, 9, 1), hardState: { term: 1, vote: 1, commit: 9 } });
    damageEntry(onlySegment(dir), 4);
    // Entries still in memory are served; the damaged one is refused, not passed on.
    expect(s.entries(8, 10, Number.POSITIVE_INFINITY).map((e) => e.index)).toEqual([8, 9]);
    expect(s.entries(2, 4, Number.POSITIVE_INFINITY).map((e) => e.index)).toEqual([2, 3]);
    expect(() => s.entries(3, 6, Number.POSITIVE_INFINITY)).toThrow(StorageCorruptError);
    expect(() => s.entries(4, 5, Number.POSITIVE_INFINITY)).toThrow(/entry 4 .*fails its checksum/);
    await s.close();
  });

  it("refuses a log with a gap, and one whose committed tail is lost", async () => {
    const gap = tempDir();
    const s = DurableRaftStorage.open(gap);
    await s.bootstrap({ voters: [1] });
    await s.persist({ entries: range(2, 6, 1), hardState: { term: 1, vote: 1, commit: 6 } });
    await s.close();
    tamper(gap, (r, bytes) => (entryIndex(r) === 3 ? undefined : bytes));
    expect(() => DurableRaftStorage.open(gap)).toThrow(/gap: entry 3 is missing before 4/);

    const tail = tempDir();
    const t = DurableRaftStorage.open(tail);
    await t.bootstrap({ voters: [1] });
    await t.persist({ entries: range(2, 6, 1), hardState: { term: 1, vote: 1, commit: 6 } });
    await t.close();
    tamper(tail, (r, bytes) => ((entryIndex(r) ?? 0) >= 5 ? undefined : bytes));
    expect(() => DurableRaftStorage.open(tail)).toThrow(
      /ends at 4 but entries up to 6 were committed/,
    );
  });

  it("zero-fills a segment ahead of its records, and after a reopen writes after the last one", async () => {
    const dir = tempDir();
    const s = DurableRaftStorage.open(dir, { zeroAheadBytes: 4096 });
    await s.bootstrap({ voters: [1] });
    await s.persist({ entries: range(2, 6, 1), hardState: { term: 1, vote: 1, commit: 6 } });
    await s.close();
    const path = onlySegment(dir);
    const file = readFileSync(path);
    const { end, bad } = readSegment(file);
    expect(bad).toBeUndefined();
    expect(file.byteLength).toBeGreaterThan(end);
    expect(file.subarray(end).every((b) => b === 0)).toBe(true);
    const again = DurableRaftStorage.open(dir, { zeroAheadBytes: 4096 });
    await again.persist({ entries: range(7, 8, 1), hardState: { term: 1, vote: 1, commit: 8 } });
    await again.close();
    const third = DurableRaftStorage.open(dir, { zeroAheadBytes: 4096 });
    expect(third.entries(2, 9, Number.POSITIVE_INFINITY)).toEqual(range(2, 8, 1));
    expect(third.initialState().hardState.commit).toBe(8);
    await third.close();
  });

  it("cuts off an unfinished last write, says so, and keeps everything before it", async () => {
    const dir = tempDir();
    const s = DurableRaftStorage.open(dir);
    await s.bootstrap({ voters: [1] });
    await s.persist({ entries: range(2, 6, 1), hardState: { term: 1, vote: 1, commit: 6 } });
    await s.close();
    const path = onlySegment(dir);
    const { end, records } = readSegment(readFileSync(path));
    // Half of a record where the records end: a write past the zero-filled space that a
    // crash cut short before its sync returned.
    const last = records.at(-1)!;
    const half = readFileSync(path).subarray(last.offset, last.offset + 20);
    truncateSync(path, end);
    appendFileSync(path, half);
    const repairs: string[] = [];
    const again = DurableRaftStorage.open(dir, { onRepair: (m) => repairs.push(m) });
    expect(repairs).toEqual([
      expect.stringMatching(new RegExp(`cut off an unfinished write .* from byte ${end}\\)`)),
    ]);
    expect(statSync(path).size).toBe(end);
    expect(again.entries(2, 7, Number.POSITIVE_INFINITY)).toEqual(range(2, 6, 1));
    // Appends after the repair are read back after the next open.
    await again.persist({ entries: range(7, 8, 1), hardState: { term: 1, vote: 1, commit: 8 } });
    await again.close();
    const third = DurableRaftStorage.open(dir, { onRepair: (m) => repairs.push(m) });
    expect(third.lastIndex()).toBe(8);
    expect(repairs).toHaveLength(1);
    await third.close();
  });

  it("cuts off a last write of which a sector never reached the disk", async () => {
    const dir = tempDir();
    const s = DurableRaftStorage.open(dir);
    await s.bootstrap({ voters: [1] });
    await s.persist({ entries: range(2, 3, 1), hardState: { term: 1, vote: 1, commit: 3 } });
    const big = entry(4, 1, "x".repeat(3000));
    await s.persist({ entries: [big, entry(5, 1)], hardState: { term: 1, vote: 1, commit: 3 } });
    await s.close();
    const path = onlySegment(dir);
    const { records } = readSegment(readFileSync(path));
    const bigRecord = records.find((r) => entryIndex(r) === 4)!;
    // The sectors past the first of the big entry's stay as they were before the write:
    // zero-filled space.
    const sector = Math.ceil((bigRecord.offset + 600) / 512) * 512;
    overwrite(path, sector, Buffer.alloc(1024));
    const repairs: string[] = [];
    const again = DurableRaftStorage.open(dir, { onRepair: (m) => repairs.push(m) });
    expect(repairs).toEqual([expect.stringMatching(/cut off an unfinished write/)]);
    expect(again.lastIndex()).toBe(3);
    expect(again.entries(2, 4, Number.POSITIVE_INFINITY)).toEqual(range(2, 3, 1));
    await again.close();
  });

  it("refuses a segment before the last with data past the zero-filled end of its records", async () => {
    const dir = tempDir();
    const s = await grownLog(dir);
    await s.close();
    const names = readdirSync(join(dir, "wal")).sort();
    expect(names.length).toBeGreaterThan(1);
    const first = join(dir, "wal", names[0]!);
    const { end } = readSegment(readFileSync(first));
    const size = statSync(first).size;
    expect(size).toBeGreaterThan(end);
    overwrite(first, size - 1, Buffer.from([7]));
    expect(() => DurableRaftStorage.open(dir, { segmentBytes: 2048 })).toThrow(
      /has data after the zero-filled end of its records: the file is damaged/,
    );
  });

  it("starts new segments as the log grows and deletes the compacted ones", async () => {
    const dir = tempDir();
    const s = await grownLog(dir);
    const segments = () => readdirSync(join(dir, "wal")).length;
    const grown = segments();
    expect(grown).toBeGreaterThan(3);
    const conf = s.initialState().confState;
    await s.snapshotAndCompact(190, conf, new TextEncoder().encode("state@190"), 5);
    expect(segments()).toBeLessThan(grown);
    await s.close();
    const again = DurableRaftStorage.open(dir, { segmentBytes: 2048 });
    expect([again.firstIndex(), again.lastIndex(), again.snapshot().metadata.index]).toEqual([
      186, 201, 190,
    ]);
    expect(again.initialState().hardState.commit).toBe(201);
    expect(new TextDecoder().decode(again.snapshot().data)).toBe("state@190");
    expect(again.entries(186, 202, Number.POSITIVE_INFINITY)).toEqual(range(186, 201, 1));
    // Only the current snapshot's file is kept.
    expect(readdirSync(dir).filter((n) => n.endsWith(".snap"))).toHaveLength(1);
    // A snapshot from the leader replaces the log: the segments before it go too.
    await again.persist({
      snapshot: { metadata: { index: 300, term: 2, confState: conf }, data: new Uint8Array([9]) },
      entries: [],
      hardState: { term: 2, vote: 0, commit: 300 },
    });
    expect(segments()).toBe(1);
    await again.close();
    const third = DurableRaftStorage.open(dir, { segmentBytes: 2048 });
    expect([third.firstIndex(), third.lastIndex(), third.snapshot().data]).toEqual([
      301,
      300,
      new Uint8Array([9]),
    ]);
    await third.close();
  });

  it("refuses a directory written by the earlier LMDB storage, saying what to do", () => {
    const dir = tempDir();
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, "data.mdb"), "");
    expect(() => DurableRaftStorage.open(dir)).toThrow(/earlier Quartet \(LMDB\).*--fresh/);
  });

  it("keeps every acknowledged write when its process is killed with SIGKILL mid-stream", async () => {
    const dir = tempDir();
    for (let round = 0; round < 3; round++) {
      const child = spawn(
        process.execPath,
        [join(import.meta.dirname, "fixtures/storage-writer.ts"), dir],
        {
          stdio: ["ignore", "pipe", "inherit"],
        },
      );
      let acked = 0;
      let buffered = "";
      await new Promise<void>((resolve) => {
        child.stdout.on("data", (chunk: Buffer) => {
          buffered += chunk.toString();
          const lines = buffered.split("\n");
          buffered = lines.pop() ?? "";
          for (const line of lines) acked = Number(line);
          // Killed mid-stream, a few hundred acknowledged writes in: writes are in flight.
          if (acked >= (round + 1) * 300 && child.exitCode === null) {
            child.kill("SIGKILL");
          }
        });
        child.on("exit", () => resolve());
      });
      expect(acked).toBeGreaterThanOrEqual((round + 1) * 300);
      const s = DurableRaftStorage.open(dir);
      expect(s.lastIndex()).toBeGreaterThanOrEqual(acked);
      const all = s.entries(s.firstIndex(), s.lastIndex() + 1, Number.POSITIVE_INFINITY);
      expect(all.every((e) => new TextDecoder().decode(e.data) === `value-${e.index}`)).toBe(true);
      expect(s.initialState().hardState.commit).toBeGreaterThanOrEqual(acked);
      await s.close();
    }
  });
});
