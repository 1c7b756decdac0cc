// Runs random seeds until stopped (Ctrl-C), or for RAFT_SOAK_SECONDS. Starts at RAFT_SOAK_START
// (default: a random seed) so repeated soaks cover new ground; prints a replay command on
// failure and exits 1.
import { randomRun } from "../src/sim/index.ts";

const start = Number(process.env.RAFT_SOAK_START ?? Math.floor(Math.random() * 1e9));
const seconds = Number(process.env.RAFT_SOAK_SECONDS ?? Number.POSITIVE_INFINITY);
const began = performance.now();
let stop = false;
process.on("SIGINT", () => {
  stop = true;
});
console.log(`soak from seed ${start}${Number.isFinite(seconds) ? ` for ${seconds}s` : ""}`);
let seed = start;
let lastReport = began;
while (!stop && performance.now() - began < seconds * 1000) {
  const r = randomRun(seed);
  if (!r.ok) {
    console.error(`seed ${seed} FAILED: ${r.error}`);
    console.error(`replay: RAFT_SEED=${seed} npm test -w @quartet/raft`);
    process.exit(1);
  }
  seed++;
  if (performance.now() - lastReport > 10_000) {
    lastReport = performance.now();
    console.log(`${seed - start} seeds ok (up to ${seed - 1})`);
  }
  // Let SIGINT through between seeds.
  if ((seed - start) % 200 === 0) await new Promise((resolve) => setImmediate(resolve));
}
console.log(`${seed - start} seeds ok (${start}..${seed - 1})`);
