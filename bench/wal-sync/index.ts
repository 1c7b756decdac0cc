// bench/wal-sync: what one Ready's write and fdatasync costs on this disk, three writers at once
// (the three members of a cluster share one disk), for the layouts of a write-ahead log:
// - storage: Quartet's DurableRaftStorage as it is, its segment zero-filled ahead of the records;
// - storage-append: the same with zeroAheadBytes 0, each Ready appended to the file's end;
// - append and fallocate: a bare file, appended to, or `fallocate`d first and written over
//   (etcd's WAL segments), each Ready a 10 KB write and an fdatasync.
// Sides alternate in each round; figures are medians over rounds of the three writers' means.
import { spawn } from "node:child_process";
import { mkdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { type Figure, median, report } from "../lib/report.ts";
import { diskTempDir, ensureCommands } from "../lib/tools.ts";

ensureCommands({ fallocate: "util-linux" });
const readies = Number(process.env.BENCH_WAL_READIES ?? 3000);
const rounds = Number(process.env.BENCH_ROUNDS ?? 2);
const sides = ["storage", "storage-append", "append", "fallocate"];
const writer = fileURLToPath(new URL("./writer.ts", import.meta.url));

const { dir: root, fsType } = diskTempDir("quartet-wal-bench-");

interface WriterResult {
  perSec: number;
  mean: number;
  p50: number;
  p99: number;
}

/** Three writers of `side` at once; each one's result. */
async function runSide(side: string, round: number): Promise<WriterResult[]> {
  const children = [0, 1, 2].map((n) => {
    const dir = join(root, `${side}-${round}-${n}`);
    mkdirSync(dir);
    const child = spawn(process.execPath, [writer, side, dir, String(readies)], {
      stdio: ["pipe", "pipe", "inherit"],
    });
    // The writer prints "ready" once warmed up, then its result as the last line.
    const lines: string[] = [];
    const ready = new Promise<void>((resolve) =>
      createInterface({ input: child.stdout }).on("line", (line) => {
        lines.push(line);
        if (line === "ready") resolve();
      }),
    );
    const done = new Promise<WriterResult>((resolve, reject) =>
      child.once("close", (code) =>
        code === 0
          ? resolve(JSON.parse(lines.at(-1)!) as WriterResult)
          : reject(new Error(`wal-sync writer (${side}) exited with ${code}`)),
      ),
    );
    return { child, ready, done };
  });
  await Promise.all(children.map((c) => c.ready));
  for (const c of children) c.child.stdin.write("go\n");
  return Promise.all(children.map((c) => c.done));
}

const results = new Map<string, WriterResult[][]>(sides.map((s) => [s, []]));
try {
  for (let round = 0; round < rounds; round++) {
    const order = round % 2 === 0 ? sides : [...sides].reverse();
    for (const side of order) results.get(side)!.push(await runSide(side, round));
  }
} finally {
  rmSync(root, { recursive: true, force: true });
}

const figures: Record<string, Figure> = {};
const stat = (side: string, pick: (r: WriterResult) => number) =>
  median(results.get(side)!.map((round) => round.reduce((a, r) => a + pick(r), 0) / round.length));
for (const side of sides) {
  figures[`${side}/readies`] = { value: stat(side, (r) => r.perSec), unit: "Readies/s per writer" };
  figures[`${side}/mean`] = { value: stat(side, (r) => r.mean), unit: "ms per Ready" };
  figures[`${side}/p50`] = { value: stat(side, (r) => r.p50), unit: "ms" };
  figures[`${side}/p99`] = { value: stat(side, (r) => r.p99), unit: "ms" };
}
const ratio = (a: string, b: string, what: string) =>
  figures[`${a}/${what}`]!.value / figures[`${b}/${what}`]!.value;
report(
  "wal-sync",
  figures,
  {
    "storage_vs_storage-append/readies": ratio("storage", "storage-append", "readies"),
    "storage_vs_storage-append/mean": ratio("storage", "storage-append", "mean"),
    "storage_vs_storage-append/p99": ratio("storage", "storage-append", "p99"),
    "fallocate_vs_append/mean": ratio("fallocate", "append", "mean"),
  },
  [
    `3 writers at once on ${fsType} (${tmpdir()}), ${readies} Readies each after 50 to warm up, ${rounds} rounds, sides alternating; medians over rounds of the writers' means`,
    "a Ready: 30 entries of 330 bytes (about a put-64 batch) and a hard state for the storage sides; one 10 KB write for the bare files; each followed by fdatasync",
    "storage: DurableRaftStorage as it is (its segment zero-filled 1 MiB ahead); storage-append: the same with zeroAheadBytes 0; fallocate: a file fallocate'd to 64 MiB first and written over, as etcd's WAL segments",
  ],
);
