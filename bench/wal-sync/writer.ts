// One writer of bench/wal-sync: persists `readies` Readies of about 10 KB each in `dir` the way
// its side says, after the parent's "go" (so the three writers sync at the same time, as the
// three members of a cluster on one disk do), and prints each sync's duration summary as JSON.
import { execFileSync } from "node:child_process";
import { closeSync, fdatasyncSync, openSync, writeSync } from "node:fs";
import { join } from "node:path";
import { createInterface } from "node:readline";
import type { Entry } from "@quartet/raft";
import { DurableRaftStorage } from "../../services/consensus/src/storage/raft-storage.ts";
import { quantile } from "../lib/report.ts";

const [side, dir, readiesArg] = process.argv.slice(2) as [string, string, string];
const readies = Number(readiesArg);
/** A put-64 Ready: about 30 entries of a 256-byte value with its key and framing. */
const entriesPerReady = 30;
const entryData = new Uint8Array(330).fill(7);
/** What a bare file gets per Ready: about the bytes of such a Ready's records. */
const readyBytes = Buffer.alloc(10 * 1024, 7);

/** Persists Ready `i` (from 0), returning when it is on disk. */
async function writerFor(): Promise<(i: number) => Promise<void>> {
  if (side === "storage" || side === "storage-append") {
    const storage = DurableRaftStorage.open(
      dir,
      side === "storage-append" ? { zeroAheadBytes: 0 } : {},
    );
    await storage.bootstrap({ voters: [1] });
    return async (i) => {
      const first = 2 + i * entriesPerReady;
      const entries: Entry[] = Array.from({ length: entriesPerReady }, (_, k) => ({
        index: first + k,
        term: 1,
        type: "normal",
        data: entryData,
      }));
      const last = first + entriesPerReady - 1;
      await storage.persist({ entries, hardState: { term: 1, vote: 1, commit: last } });
    };
  }
  const path = join(dir, "segment");
  if (side === "fallocate") execFileSync("fallocate", ["-l", "64M", path]);
  const fd = openSync(path, side === "fallocate" ? "r+" : "a");
  process.on("exit", () => closeSync(fd));
  return async (i) => {
    if (side === "fallocate")
      writeSync(fd, readyBytes, 0, readyBytes.byteLength, i * readyBytes.byteLength);
    else writeSync(fd, readyBytes);
    fdatasyncSync(fd);
  };
}

const write = await writerFor();
for (let i = 0; i < 50; i++) await write(i); // warm-up
console.log("ready");
await new Promise<void>((resolve) =>
  createInterface({ input: process.stdin }).once("line", () => resolve()),
);
const ms: number[] = [];
const start = performance.now();
for (let i = 50; i < 50 + readies; i++) {
  const t = performance.now();
  await write(i);
  ms.push(performance.now() - t);
}
const elapsed = performance.now() - start;
ms.sort((a, b) => a - b);
console.log(
  JSON.stringify({
    perSec: (readies / elapsed) * 1000,
    mean: ms.reduce((a, b) => a + b, 0) / ms.length,
    p50: quantile(ms, 0.5),
    p99: quantile(ms, 0.99),
  }),
);
process.exit(0);
