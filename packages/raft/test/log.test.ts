import { describe, expect, it } from "vitest";
import { COMPACTED, type Entry, MemoryStorage, UNAVAILABLE } from "../src/index.ts";
import { RaftLog } from "../src/log.ts";
import { Unstable } from "../src/unstable.ts";

const ent = (index: number, term: number, data = ""): Entry => ({
  index,
  term,
  type: "normal",
  data: new TextEncoder().encode(data),
});

describe("MemoryStorage", () => {
  it("replaces a conflicting suffix on append and reports terms around its bounds", () => {
    const s = new MemoryStorage();
    s.append([ent(1, 1), ent(2, 1), ent(3, 2)]);
    s.append([ent(3, 3), ent(4, 3)]);
    expect(s.entries(1, 5, Number.POSITIVE_INFINITY).map((e) => e.term)).toEqual([1, 1, 3, 3]);
    expect(s.term(0)).toBe(0);
    expect(s.term(5)).toBe(UNAVAILABLE);
    expect(() => s.append([ent(7, 3)])).toThrow(/missing entries/);
  });

  it("compacts only up to its snapshot, then reports compacted terms", () => {
    const s = new MemoryStorage();
    s.append([ent(1, 1), ent(2, 1), ent(3, 2), ent(4, 2)]);
    expect(() => s.compact(2)).toThrow(/past the snapshot/);
    s.createSnapshot(
      3,
      { voters: [1], learners: [], votersOutgoing: [], learnersNext: [], autoLeave: false },
      new Uint8Array([7]),
    );
    s.compact(2);
    expect(s.firstIndex()).toBe(3);
    expect(s.term(1)).toBe(COMPACTED);
    expect(s.term(2)).toBe(1);
    expect(() => s.entries(2, 4, Number.POSITIVE_INFINITY)).toThrow(/compacted/);
    expect(s.snapshot().metadata).toMatchObject({ index: 3, term: 2 });
  });

  it("limits entries by bytes but always returns at least one", () => {
    const s = new MemoryStorage();
    s.append([ent(1, 1, "aaaa"), ent(2, 1, "bbbb"), ent(3, 1, "cccc")]);
    expect(s.entries(1, 4, 9).length).toBe(2);
    expect(s.entries(1, 4, 1).length).toBe(1);
  });
});

describe("RaftLog", () => {
  it("keeps matching entries and truncates only from the first conflict", () => {
    const s = new MemoryStorage();
    s.append([ent(1, 1), ent(2, 1), ent(3, 1)]);
    const log = new RaftLog(s);
    // A stale append covering entries we already have must not truncate entry 3.
    expect(log.maybeAppend(0, 0, 0, [ent(1, 1), ent(2, 1)])).toBe(2);
    expect(log.lastIndex()).toBe(3);
    expect(log.maybeAppend(1, 1, 0, [ent(2, 2)])).toBe(2);
    expect(log.lastIndex()).toBe(2);
    expect(log.term(2)).toBe(2);
    expect(log.maybeAppend(5, 1, 0, [])).toBe(-1);
  });

  it("refuses to overwrite committed entries", () => {
    const s = new MemoryStorage();
    s.append([ent(1, 1), ent(2, 1)]);
    const log = new RaftLog(s);
    log.commitTo(2);
    expect(() => log.maybeAppend(1, 1, 2, [ent(2, 5)])).toThrow(/conflicts with committed/);
  });

  it("finds where logs may agree from a (index, term) hint", () => {
    const s = new MemoryStorage();
    // idx:  1 2 3 4 5 6
    // term: 1 3 3 4 4 5
    s.append([ent(1, 1), ent(2, 3), ent(3, 3), ent(4, 4), ent(5, 4), ent(6, 5)]);
    const log = new RaftLog(s);
    expect(log.findConflictByTerm(6, 3)).toEqual([3, 3]);
    expect(log.findConflictByTerm(6, 2)).toEqual([1, 1]);
    expect(log.findConflictByTerm(6, 9)).toEqual([6, 5]);
  });

  it("commits by quorum only entries of the given (current) term", () => {
    const s = new MemoryStorage();
    s.append([ent(1, 1), ent(2, 2)]);
    const log = new RaftLog(s);
    expect(log.maybeCommit(2, 3)).toBe(false);
    expect(log.maybeCommit(2, 2)).toBe(true);
    expect(log.committed).toBe(2);
  });
});

describe("Unstable", () => {
  it("ignores a stale persistence report for entries overwritten meanwhile", () => {
    const u = new Unstable(1);
    u.truncateAndAppend([ent(1, 1), ent(2, 1)]);
    const handed = u.share();
    u.truncateAndAppend([ent(2, 2)]);
    expect(handed.map((e) => e.term)).toEqual([1, 1]); // the Ready's array did not change
    u.stableTo(2, 1);
    expect(u.entries.length).toBe(2);
    u.stableTo(2, 2);
    expect(u.entries.length).toBe(0);
    expect(u.offset).toBe(3);
  });
});
