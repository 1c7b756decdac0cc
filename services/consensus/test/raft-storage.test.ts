import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Entry } from "@quartet/raft";
import { open } from "lmdb";
import { afterEach, describe, expect, it } from "vitest";
import { DurableRaftStorage, StorageCorruptError } from "../src/storage/raft-storage.ts";

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

/** Rewrites one raw LMDB record of a closed storage, as a damaged disk or a bad copy would. */
async function tamper(dir: string, fn: (log: ReturnType<typeof rawLog>) => void) {
  const env = open({ path: dir, maxDbs: 4 });
  fn(rawLog(env));
  await env.flushed;
  await env.close();
}
function rawLog(env: ReturnType<typeof open>) {
  return env.openDB<Uint8Array, number>({ name: "log", encoding: "binary" });
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
    await tamper(dir, (log) => {
      const bytes = Buffer.from(log.getBinary(4) as Uint8Array);
      bytes[bytes.length - 1] ^= 0xff;
      void log.put(4, bytes);
    });
    expect(() => DurableRaftStorage.open(dir)).toThrow(StorageCorruptError);
    expect(() => DurableRaftStorage.open(dir)).toThrow(/entry 4 .*fails its checksum/);
  });

  it("refuses a log with a gap, and one whose committed tail is lost", async () => {
    const gap = tempDir();
    const s = DurableRaftStorage.open(gap);
    await s.bootstrap({ voters: [1] });
    await s.persist({ entries: range(2, 6, 1), hardState: { term: 1, vote: 1, commit: 6 } });
    await s.close();
    await tamper(gap, (log) => void log.remove(3));
    expect(() => DurableRaftStorage.open(gap)).toThrow(/gap: entry 3 is missing before 4/);

    const tail = tempDir();
    const t = DurableRaftStorage.open(tail);
    await t.bootstrap({ voters: [1] });
    await t.persist({ entries: range(2, 6, 1), hardState: { term: 1, vote: 1, commit: 6 } });
    await t.close();
    await tamper(tail, (log) => {
      void log.remove(6);
      void log.remove(5);
    });
    expect(() => DurableRaftStorage.open(tail)).toThrow(
      /ends at 4 but entries up to 6 were committed/,
    );
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
