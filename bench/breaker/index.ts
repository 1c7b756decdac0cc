// Throughput of a no-op async call: bare, through a closed breaker, and rejected by an open
// one, for Quartet, opossum and cockatiel, measured in one run in alternating rounds.
import { createRequire } from "node:module";
import { join } from "node:path";
import { CircuitBreaker as QuartetBreaker } from "@quartet/breaker";
import { CircuitState, ConsecutiveBreaker, circuitBreaker, handleAll } from "cockatiel";
import Opossum from "opossum";
import { median, report, throughput } from "../lib/report.ts";

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 8);
const ROUND_MS = Number(process.env.BENCH_ROUND_MS ?? 250);
const BATCH = 1000;
const FOREVER = 1e9; // reset timeouts long enough that an open breaker stays open for the run

const noop = (): Promise<void> => Promise.resolve();
const fail = (): Promise<void> => Promise.reject(new Error("boom"));
const ignore = () => {};

type Call = () => Promise<unknown>;

async function trip(call: (fn: Call) => Promise<unknown>, isOpen: () => boolean): Promise<void> {
  for (let i = 0; i < 100 && !isOpen(); i++) await call(fail).catch(ignore);
  if (!isOpen()) throw new Error("breaker did not open");
}

// Quartet
const qClosed = new QuartetBreaker({ name: "bench" });
const qOpen = new QuartetBreaker({ name: "bench-open", resetTimeoutMs: FOREVER });
await trip(
  (fn) => qOpen.execute(fn),
  () => qOpen.state === "open",
);

// opossum: its fastest configuration (no per-call timeout timer), reset timeout out of reach.
const opossumOptions = { timeout: false as const, resetTimeout: FOREVER };
const oClosed = new Opossum(noop, opossumOptions);
const oOpenAction = { fn: noop as Call };
const oOpen = new Opossum(() => oOpenAction.fn(), opossumOptions);
oOpenAction.fn = fail;
await trip(
  () => oOpen.fire(),
  () => oOpen.opened,
);
oOpenAction.fn = noop;

// cockatiel
const cClosed = circuitBreaker(handleAll, {
  halfOpenAfter: FOREVER,
  breaker: new ConsecutiveBreaker(5),
});
const cOpen = circuitBreaker(handleAll, {
  halfOpenAfter: FOREVER,
  breaker: new ConsecutiveBreaker(5),
});
await trip(
  (fn) => cOpen.execute(fn),
  () => cOpen.state === CircuitState.Open,
);

const cases: Record<string, () => Promise<number>> = {
  "bare/call": async () => {
    for (let i = 0; i < BATCH; i++) await noop();
    return BATCH;
  },
  "quartet/closed": async () => {
    for (let i = 0; i < BATCH; i++) await qClosed.execute(noop);
    return BATCH;
  },
  "opossum/closed": async () => {
    for (let i = 0; i < BATCH; i++) await oClosed.fire();
    return BATCH;
  },
  "cockatiel/closed": async () => {
    for (let i = 0; i < BATCH; i++) await cClosed.execute(noop);
    return BATCH;
  },
  "quartet/open": async () => {
    for (let i = 0; i < BATCH; i++) await qOpen.execute(noop).catch(ignore);
    return BATCH;
  },
  "opossum/open": async () => {
    for (let i = 0; i < BATCH; i++) await oOpen.fire().catch(ignore);
    return BATCH;
  },
  "cockatiel/open": async () => {
    for (let i = 0; i < BATCH; i++) await cOpen.execute(noop).catch(ignore);
    return BATCH;
  },
};

const samples: Record<string, number[]> = {};
const names = Object.keys(cases);
for (const name of names) {
  samples[name] = [];
  await throughput(100, cases[name]!); // warm-up
}
for (let round = 0; round < ROUNDS; round++) {
  // Rotate the order every round so no side always runs first (or right after a GC).
  for (let k = 0; k < names.length; k++) {
    const name = names[(k + round) % names.length]!;
    globalThis.gc?.();
    samples[name]!.push(await throughput(ROUND_MS, cases[name]!));
  }
}

if (qOpen.state !== "open" || !oOpen.opened || cOpen.state !== CircuitState.Open)
  throw new Error("an open breaker closed during the run; results are invalid");
const m = qClosed.metrics();
if (m.failures !== 0 || m.rejections !== 0)
  throw new Error("quartet closed breaker recorded failures");
oClosed.shutdown();
oOpen.shutdown();

const ops: Record<string, number> = {};
for (const name of names) ops[name] = median(samples[name]!);

const figures: Record<string, { value: number; unit: string }> = {};
for (const name of names) figures[name] = { value: ops[name]!, unit: "ops/s" };
const bareNs = 1e9 / ops["bare/call"]!;
for (const side of ["quartet", "opossum", "cockatiel"]) {
  figures[`${side}/closed_overhead`] = {
    value: 1e9 / ops[`${side}/closed`]! - bareNs,
    unit: "ns/call over bare",
  };
}

const ratios: Record<string, number> = {};
for (const state of ["closed", "open"]) {
  const q = ops[`quartet/${state}`]!;
  ratios[`quartet_vs_opossum/${state}`] = q / ops[`opossum/${state}`]!;
  ratios[`quartet_vs_cockatiel/${state}`] = q / ops[`cockatiel/${state}`]!;
  for (const side of ["quartet", "opossum", "cockatiel"])
    ratios[`${side}_vs_bare/${state}`] = ops[`${side}/${state}`]! / ops["bare/call"]!;
}

const require = createRequire(import.meta.url);
const version = (pkg: string) => {
  // Packages need not export their package.json: walk up from the resolved entry instead.
  let dir = require.resolve(pkg);
  for (let i = 0; i < 5; i++) {
    dir = join(dir, "..");
    try {
      return (require(join(dir, "package.json")) as { version: string }).version;
    } catch {}
  }
  return "unknown";
};
report("breaker", figures, ratios, [
  `median of ${ROUNDS} alternating rounds of ${ROUND_MS} ms, sequential awaits of a no-op async call`,
  `opossum ${version("opossum")} with timeout: false (no per-call timer, its fastest setting); cockatiel ${version("cockatiel")} with ConsecutiveBreaker(5)`,
  "open: breakers tripped by failures, reset timeouts of 1e9 ms; rejections are caught",
]);
