// Seeded runs of the consensus state machine inside the @quartet/raft simulator (see
// consensusRun): replicas must agree at every index and acknowledged results must equal the
// sequential reference model's. A failure names its seed and the command that replays it.
//
//   CONSENSUS_SEEDS=<n>  number of seeds (default 2000: about 20 s on one core)
//   CONSENSUS_SEED=<n>   replay one seed
import { describe, expect, it } from "vitest";
import { consensusRun } from "./support/consensus-run.ts";

const replay = process.env.CONSENSUS_SEED;
const count = Number(process.env.CONSENSUS_SEEDS ?? 2000);
const replayCommand = (seed: number) =>
  `CONSENSUS_SEED=${seed} npm test -w @quartet/consensus-service -- test/simulation.test.ts`;

describe("the state machine replicated by Raft", () => {
  if (replay !== undefined) {
    it(`replays seed ${replay}`, () => {
      const r = consensusRun(Number(replay));
      console.log(`seed ${replay}:`, JSON.stringify(r.stats));
      expect(r.error, `seed ${replay} failed; replay: ${replayCommand(Number(replay))}`).toBe(
        undefined,
      );
    });
    return;
  }

  it(`${count} seeds: replicas agree and results match the sequential model`, {
    timeout: 600_000,
  }, () => {
    const failures: string[] = [];
    let acked = 0;
    for (let seed = 1; seed <= count && failures.length < 5; seed++) {
      const r = consensusRun(seed);
      if (r.error !== undefined)
        failures.push(`seed ${seed}: ${r.error}\n  replay: ${replayCommand(seed)}`);
      acked += Number(r.stats.acked ?? 0);
    }
    expect(failures.join("\n"), "every seed passes").toBe("");
    // The runs must actually exercise the store, not only elect leaders.
    expect(acked).toBeGreaterThan(count * 10);
  });
});
