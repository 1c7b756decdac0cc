// Thousands of seeded random runs (see randomRun): faults, crashes, partitions, membership
// changes, transfers and reads, with every safety property checked after every event and
// liveness checked after healing. A failure names its seed and the command that replays it.
//
//   RAFT_SEEDS=<n>  number of seeds (default 20000: about a minute on one core)
//   RAFT_SEED=<n>   replay one seed
import { describe, expect, it } from "vitest";
import { figure8Run, randomRun } from "../src/sim/index.ts";

const replay = process.env.RAFT_SEED;
const count = Number(process.env.RAFT_SEEDS ?? 20000);
const replayCommand = (seed: number) => `RAFT_SEED=${seed} npm test -w @quartet/raft`;

describe("seeded random runs", () => {
  if (replay !== undefined) {
    it(`replays seed ${replay}`, () => {
      const r = randomRun(Number(replay));
      console.log(`seed ${replay}:`, JSON.stringify(r.stats));
      expect(r.error, `seed ${replay} failed; replay: ${replayCommand(Number(replay))}`).toBe(
        undefined,
      );
    });
    return;
  }

  it(`${count} seeds are safe and live`, { timeout: 600_000 }, () => {
    const failures: string[] = [];
    for (let seed = 1; seed <= count && failures.length < 5; seed++) {
      const r = randomRun(seed);
      if (!r.ok) failures.push(`seed ${seed}: ${r.error}\n  replay: ${replayCommand(seed)}`);
    }
    expect(failures.join("\n"), "every seed passes").toBe("");
  });

  it("100 randomized Figure 8 schedules are safe and live", { timeout: 120_000 }, () => {
    const failures: string[] = [];
    for (let seed = 1; seed <= 100; seed++) {
      const err = figure8Run(seed, { unreliable: seed % 2 === 0 });
      if (err !== undefined) failures.push(`figure8 seed ${seed}: ${err}`);
    }
    expect(failures.join("\n")).toBe("");
  });
});
