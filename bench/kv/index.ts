// bench/kv: the Quartet consensus service beside etcd 3.4, 3 members each, on the same disk,
// in one run: puts/s and latency at 1/16/64 closed-loop clients, linearizable gets/s with 64
// clients, watch events/s delivered to 10 watchers of a prefix; then a check that Quartet
// really fsyncs (strace counts its sync calls under put load). The same load generator in
// this process drives both sides, over gRPC on one h2c connection to each side's leader, with
// the same caller and the same request bytes (h2-grpc-client.ts; BENCH_KV_CLIENT=connect
// drives Quartet with Connect).
//
// BENCH_FLOOR=1 adds a third side to the put cases: the floor of a replicated durable put on
// Node (node-floor-server.ts), to tell what Quartet's stack costs from what the runtime does.
//
// BENCH_PROFILE=1 instead runs Quartet alone under put-64 with `--cpu-prof` and prints the
// leader's top self-time functions (BENCH_PROFILE=get-64: under the linearizable gets).
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomInt, seededRandom } from "@quartet/determinism";
import { type Figure, median, report } from "../lib/report.ts";
import { diskTempDir, ensureCommands } from "../lib/tools.ts";
import { startEtcd } from "./etcd.ts";
import { closedLoop, countSyncs, type LoadResult } from "./load.ts";
import { startNodeFloor } from "./node-floor.ts";
import { selfTimeByPackage, topSelfTime } from "./profile.ts";
import { startQuartet } from "./quartet.ts";
import { cpuSeconds, type KvSide } from "./side.ts";

ensureCommands({ etcd: "etcd-server" });
let canStrace = true;
try {
  ensureCommands({ strace: "strace" });
} catch {
  canStrace = false;
}

const seconds = Number(process.env.BENCH_SECONDS ?? 5);
const warmupSeconds = Number(process.env.BENCH_WARMUP_SECONDS ?? 1);
const rounds = Number(process.env.BENCH_ROUNDS ?? 2);
const straceSeconds = 3;

const { dir: dataRoot, fsType } = diskTempDir("quartet-kv-bench-");

const keys = (prefix: string, n: number) =>
  Array.from({ length: n }, (_, i) => Buffer.from(`${prefix}${String(i).padStart(6, "0")}`));
const putKeys = keys("bench/put/", 10_000);
const getKeys = keys("bench/get/", 1_000);
const watchPrefix = Buffer.from("bench/watch/");
const watchKeys = keys("bench/watch/", 1_000);

/** A case's result; `cpuUsPerOp` is the CPU all three members used per operation. */
type Measured = LoadResult & { cpuUsPerOp?: number; clientCpuUsPerOp?: number };

/** A case run once on one side: warm up, then measure. */
type Case = (side: KvSide, round: number) => Promise<Measured>;

/** Runs the measured window, adding the members' and this process's CPU per operation. */
async function withCpu(side: KvSide, run: () => Promise<LoadResult>): Promise<Measured> {
  const cluster0 = cpuSeconds(side.pids);
  const client0 = process.cpuUsage();
  const start = performance.now();
  const result = await run();
  const ops = (result.opsPerSec * (performance.now() - start)) / 1000;
  const client = process.cpuUsage(client0);
  return {
    ...result,
    cpuUsPerOp: ((cpuSeconds(side.pids) - cluster0) * 1e6) / ops,
    clientCpuUsPerOp: (client.user + client.system) / ops,
  };
}

const putCase =
  (clients: number): Case =>
  async (side) => {
    const op = (i: number) => side.put(putKeys[i % putKeys.length]!);
    await closedLoop(clients, warmupSeconds, op);
    return withCpu(side, () => closedLoop(clients, seconds, op));
  };

const getCase: Case = async (side, round) => {
  const random = seededRandom(round + 1); // the same key sequence on both sides
  const op = () => side.get(getKeys[randomInt(random, getKeys.length)]!);
  await closedLoop(64, warmupSeconds, op);
  return withCpu(side, () => closedLoop(64, seconds, op));
};

/** 10 watchers of one prefix while 16 writers put under it; events received per second. */
const watchCase: Case = async (side) => {
  let events = 0;
  const cancels = await Promise.all(
    Array.from({ length: 10 }, () => side.watch(watchPrefix, (n) => (events += n))),
  );
  try {
    const op = (i: number) => side.put(watchKeys[i % watchKeys.length]!);
    await closedLoop(16, warmupSeconds, op);
    const before = events;
    const start = performance.now();
    const writes = await closedLoop(16, seconds, op);
    const delivered = events - before;
    return { ...writes, opsPerSec: (delivered * 1000) / (performance.now() - start) };
  } finally {
    for (const cancel of cancels) cancel();
  }
};

const cases: Record<string, [Case, string]> = {
  "put-1": [putCase(1), "puts/s"],
  "put-16": [putCase(16), "puts/s"],
  "put-64": [putCase(64), "puts/s"],
  "get-64": [getCase, "gets/s"],
  "watch-10": [watchCase, "events/s"],
};

async function populate(side: KvSide): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: 64 }, async () => {
      while (next < getKeys.length) await side.put(getKeys[next++]!);
    }),
  );
}

/** Sync calls of the leader per second under put-64 load, beside the puts in that window. */
async function fsyncCheck(side: KvSide): Promise<{ syncs: number; puts: number; calls: string }> {
  let done = 0;
  const op = async (i: number) => {
    await side.put(putKeys[i % putKeys.length]!);
    done++;
  };
  const load = closedLoop(64, straceSeconds + 2, op);
  await new Promise((r) => setTimeout(r, 500));
  const before = done;
  const start = performance.now();
  const counted = await countSyncs(side.leaderPid, straceSeconds);
  const puts = ((done - before) * 1000) / (performance.now() - start);
  await load;
  return {
    syncs: counted.total / straceSeconds,
    puts,
    calls: Object.entries(counted.calls)
      .map(([k, v]) => `${k} ${v}`)
      .join(", "),
  };
}

/** The case BENCH_PROFILE profiles. */
const profiled = process.env.BENCH_PROFILE === "get-64" ? "get-64" : "put-64";

async function profileQuartet(): Promise<void> {
  const profileDir = mkdtempSync(join(tmpdir(), "quartet-kv-profile-"));
  const quartet = await startQuartet(join(dataRoot, "quartet"), [
    "--cpu-prof",
    "--cpu-prof-dir",
    profileDir,
  ]);
  let result: LoadResult;
  const perMember: string[] = [];
  try {
    const random = seededRandom(1);
    if (profiled === "get-64") await populate(quartet);
    const op =
      profiled === "get-64"
        ? () => quartet.get(getKeys[randomInt(random, getKeys.length)]!)
        : (i: number) => quartet.put(putKeys[i % putKeys.length]!);
    await closedLoop(64, warmupSeconds, op);
    const before = quartet.pids.map((pid) => cpuSeconds([pid]));
    const client0 = process.cpuUsage();
    result = await closedLoop(64, seconds, op);
    const client = process.cpuUsage(client0);
    quartet.pids.forEach((pid, i) => {
      const role = pid === quartet.leaderPid ? "leader" : "follower";
      perMember.push(`${role} ${((cpuSeconds([pid]) - before[i]!) / seconds).toFixed(2)}`);
    });
    perMember.push(`load generator ${((client.user + client.system) / 1e6 / seconds).toFixed(2)}`);
  } finally {
    await quartet.stop();
  }
  console.log(`CPU cores busy during the window: ${perMember.join(", ")}`);
  const file = readdirSync(profileDir).find((f) => f.includes(`.${quartet.leaderPid}.`));
  console.log(
    `Quartet ${profiled} under --cpu-prof: ${Math.round(result.opsPerSec)} ops/s, p99 ${result.p99Ms.toFixed(1)} ms`,
  );
  if (!file)
    throw new Error(`no profile of the leader (pid ${quartet.leaderPid}) in ${profileDir}`);
  console.log(`leader's profile: ${join(profileDir, file)}\ntop self time:`);
  // The last seconds of the profile: the measured window (and the stop), not the start-up.
  const rows = topSelfTime(join(profileDir, file), Number.POSITIVE_INFINITY, seconds * 1000);
  console.log("by package:");
  for (const [pkg, percent] of selfTimeByPackage(rows).slice(0, 15))
    console.log(`  ${percent.toFixed(1).padStart(5)}%  ${pkg}`);
  console.log("by function:");
  for (const f of rows.slice(0, 30))
    console.log(`  ${f.percent.toFixed(1).padStart(5)}%  ${f.name}  ${f.where}`);
}

if (process.env.BENCH_PROFILE) {
  try {
    await profileQuartet();
  } finally {
    rmSync(dataRoot, { recursive: true, force: true });
  }
  process.exit(0);
}

const figures: Record<string, Figure> = {};
const ratios: Record<string, number> = {};
const notes: string[] = [];
const sides: KvSide[] = [];
try {
  sides.push(await startEtcd(join(dataRoot, "etcd")));
  sides.push(await startQuartet(join(dataRoot, "quartet")));
  if (process.env.BENCH_FLOOR) sides.push(await startNodeFloor(join(dataRoot, "nodefloor")));
  // The floor serves puts only.
  const sidesOf = (name: string) =>
    name.startsWith("put-") ? sides : sides.filter((s) => s.name !== "nodefloor");
  await Promise.all(sidesOf("get-64").map(populate));
  const only = process.env.BENCH_ONLY; // e.g. BENCH_ONLY=put-64 while tuning
  for (const [name, [run, unit]] of Object.entries(cases)) {
    if (only && !name.includes(only)) continue;
    const caseSides = sidesOf(name);
    const results: Record<string, Measured[]> = { etcd: [], quartet: [], nodefloor: [] };
    for (let r = 0; r < rounds; r++) {
      // Alternate which side goes first, so drift in the machine's speed hits both alike.
      for (const side of r % 2 === 0 ? caseSides : [...caseSides].reverse()) {
        results[side.name]!.push(await run(side, r));
      }
      const line = caseSides
        .map((s) => {
          const x = results[s.name]!.at(-1)!;
          return `${s.name} ${Math.round(x.opsPerSec)} ${unit} (p50 ${x.p50Ms.toFixed(2)} ms, p99 ${x.p99Ms.toFixed(2)} ms, ${Math.round(100 * x.slowInGeneratorGc)}% of it in generator GC, ${x.p99OutsideGeneratorGcMs.toFixed(2)} ms outside)`;
        })
        .join("  ");
      console.log(`  ${name} round ${r + 1}: ${line}`);
    }
    for (const side of caseSides) {
      const rs = results[side.name]!;
      figures[`${side.name}/${name}`] = { value: median(rs.map((x) => x.opsPerSec)), unit };
      figures[`${side.name}/${name}-p50`] = { value: median(rs.map((x) => x.p50Ms)), unit: "ms" };
      figures[`${side.name}/${name}-p99`] = { value: median(rs.map((x) => x.p99Ms)), unit: "ms" };
      figures[`${side.name}/${name}-generator-gc`] = {
        value: median(rs.map((x) => x.generatorGcMsPerSec)),
        unit: "ms/s paused (load generator)",
      };
      figures[`${side.name}/${name}-p99-outside-generator-gc`] = {
        value: median(rs.map((x) => x.p99OutsideGeneratorGcMs)),
        unit: "ms",
      };
      figures[`${side.name}/${name}-p99-in-generator-gc`] = {
        value: median(rs.map((x) => 100 * x.slowInGeneratorGc)),
        unit: "% of calls >= p99",
      };
      if (rs[0]!.cpuUsPerOp !== undefined) {
        figures[`${side.name}/${name}-cpu`] = {
          value: median(rs.map((x) => x.cpuUsPerOp!)),
          unit: "us CPU/op (3 members)",
        };
        figures[`${side.name}/${name}-client-cpu`] = {
          value: median(rs.map((x) => x.clientCpuUsPerOp!)),
          unit: "us CPU/op (load generator)",
        };
      }
    }
    const e = (k: string) => figures[`etcd/${k}`]!.value;
    for (const side of caseSides.filter((s) => s.name !== "etcd")) {
      const q = (k: string) => figures[`${side.name}/${k}`]!.value;
      ratios[`${side.name}_vs_etcd/${name}`] = q(name) / e(name);
      if (name === "put-16" || name === "put-64") {
        ratios[`${side.name}_vs_etcd/${name}-p99`] = q(`${name}-p99`) / e(`${name}-p99`);
        ratios[`${side.name}_vs_etcd/${name}-p99-outside-generator-gc`] =
          q(`${name}-p99-outside-generator-gc`) / e(`${name}-p99-outside-generator-gc`);
      }
    }
  }
  if (canStrace) {
    for (const side of sides) {
      const check = await fsyncCheck(side);
      figures[`${side.name}/fsync-check-syncs`] = { value: check.syncs, unit: "syncs/s" };
      figures[`${side.name}/fsync-check-puts`] = { value: check.puts, unit: "puts/s" };
      notes.push(
        `fsync check (${side.name} leader under put-64, strace attached ${straceSeconds} s): ${Math.round(check.syncs)} syncs/s for ${Math.round(check.puts)} puts/s (${(check.puts / Math.max(check.syncs, 1)).toFixed(1)} puts per sync; calls: ${check.calls || "none"})`,
      );
    }
  } else {
    notes.push("fsync check skipped: strace could not be installed");
  }
} finally {
  await Promise.all(sides.map((s) => s.stop()));
  rmSync(dataRoot, { recursive: true, force: true });
}

report("kv", figures, ratios, [
  `${seconds} s per case after ${warmupSeconds} s warm-up, ${rounds} rounds, sides alternating; medians`,
  `fresh 3-member clusters on ${fsType} (${tmpdir()}), default fsync; 256-byte values; every request to the leader over gRPC on one h2c connection (puts and gets: ${process.env.BENCH_KV_CLIENT === "connect" ? "etcd: a gRPC caller on node:http2 (h2-grpc-client.ts), Quartet: Connect createGrpcTransport" : "the same gRPC caller on node:http2 (h2-grpc-client.ts) and the same request bytes on both sides"}; watches: the etcd3 npm client, and Connect for Quartet); Quartet members snapshot every 100,000 entries (etcd 3.4's default --snapshot-count)`,
  "puts: closed-loop clients over 10,000 keys; gets: linearizable, 64 clients over 1,000 existing keys; watch: 10 watchers of one prefix, 16 writers, events received by all watchers per second (its p50/p99 are the writers' put latencies)",
  ...(process.env.BENCH_FLOOR
    ? [
        "nodefloor (BENCH_FLOOR=1): the floor of a replicated durable put on Node, no Raft, MVCC or Connect: a leader on node:http2's stream API batching puts while its log syncs, each batch appended and fdatasync'd while sent to 2 followers over TCP, answered after its own sync and one follower's (node-floor-server.ts)",
      ]
    : []),
  "targets (issue 14): put-16 and put-64 >= 1.0x with p99 <= etcd's; get-64 >= 1.0x",
  "generator-gc: this process's own GC pauses per second of a window; p99-in-generator-gc: the share of the calls at or above the p99 that were in flight during one of them (such a call's time is partly the load generator's, on either side); p99-outside-generator-gc: the p99 of the calls in flight during none (the servers' tail without the generator's; both p99 ratios count for the target)",
  ...notes,
]);
process.exit(0);
