import { create, fromBinary, type MessageInitShape, toBinary } from "@bufbuild/protobuf";
import { type Command, CommandSchema } from "@quartet/proto/quartet/consensus/v1/internal_pb";
import {
  Compare_CompareResult,
  RangeRequestSchema,
} from "@quartet/proto/quartet/consensus/v1/kv_pb";
import { type Random, seededRandom } from "@quartet/raft";
import { SafetyViolation, Simulator } from "@quartet/raft/sim";

import type { ConsensusStateMachine } from "../../src/state/state-machine.ts";
import { ReferenceModel } from "./reference-model.ts";
import { AppliedLog, SimConsensusStateMachine } from "./sim-state-machine.ts";
import { kvText, plainKv } from "./summary.ts";

type CommandOp = MessageInitShape<typeof CommandSchema>["op"];

const enc = new TextEncoder();
const b = (s: string) => enc.encode(s);

/** What one seeded run did, or how it failed. */
export interface ConsensusRunResult {
  seed: number;
  error?: string;
  stats: Record<string, number | boolean>;
}

function pick<T>(rng: Random, xs: readonly T[]): T {
  return xs[Math.floor(rng() * xs.length)]!;
}

/**
 * One seeded run of the consensus state machine in the Raft simulator: random clients put,
 * compare-and-swap, delete ranges, compact, grant, renew and revoke leases through the leader,
 * which also proposes lease expiry and, once per term, the fresh-TTL promotion; meanwhile the
 * network loses, duplicates and reorders messages, nodes crash and restart, partitions come
 * and go and leadership moves. Checked: every replica produces the same result and the same
 * state bytes at every index (and a restored snapshot holds that state), every acknowledged
 * command's result equals the sequential reference model's in log order, and past-revision
 * reads on every replica equal the model's.
 */
export function consensusRun(seed: number, ticks = 150): ConsensusRunResult {
  const rng = seededRandom((seed ^ 0x2545f491) >>> 0);
  const n = rng() < 0.7 ? 3 : 5;
  const log = new AppliedLog();
  const sim = new Simulator<SimConsensusStateMachine>({
    seed,
    nodes: n,
    raft: { preVote: rng() < 0.7, checkQuorum: rng() < 0.7 },
    network: {
      dropRate: pick(rng, [0, 0.05, 0.2]),
      duplicateRate: pick(rng, [0, 0.05]),
      minDelay: 1,
      maxDelay: pick(rng, [5, 20, 60]),
    },
    snapshotEvery: pick(rng, [0, 5, 20]),
    keepEntries: pick(rng, [0, 2]),
    stateMachine: (index, data) => SimConsensusStateMachine.restore(log, index, data),
  });
  const stats: ConsensusRunResult["stats"] = { nodes: n };
  /** Proposals the leader accepted: index -> (term, command). Acked if committed at that term. */
  const proposals = new Map<number, { term: number; cmd: Command }>();
  let promotedTerm = -1;

  const propose = (op: CommandOp): void => {
    // The leader's clock runs 20x virtual time, so leases of 1-3 s expire within a run.
    const cmd = create(CommandSchema, { op, nowMs: BigInt(sim.now * 20) });
    const res = sim.propose(toBinary(CommandSchema, cmd));
    if (res.ok) proposals.set(res.index, { term: res.term, cmd });
  };

  try {
    for (let t = 0; t < ticks; t++) {
      const lead = sim.leader();
      const leadSm = lead === undefined ? undefined : sim.node(lead).kv.sm;
      // A new leader first gives every lease a fresh TTL (etcd's promotion on election).
      const term = lead === undefined ? -1 : sim.node(lead).raw!.raft.term;
      if (lead !== undefined && term !== promotedTerm) {
        promotedTerm = term;
        propose({ case: "promoteLeases", value: {} });
      }
      const r = rng();
      if (r < 0.4 && leadSm !== undefined) {
        propose(randomOp(rng, leadSm));
      } else if (r < 0.45) {
        propose({ case: "expireLeases", value: {} });
      } else if (r < 0.48) {
        const ids = [...sim.nodes.keys()].sort(() => rng() - 0.5);
        const cut = 1 + Math.floor(rng() * (ids.length - 1));
        sim.partition(ids.slice(0, cut), ids.slice(cut));
      } else if (r < 0.51) {
        sim.heal();
      } else if (r < 0.53) {
        sim.crash(pick(rng, [...sim.nodes.keys()]));
      } else if (r < 0.57) {
        const down = [...sim.nodes.keys()].filter((id) => !sim.node(id).up);
        if (down.length > 0) sim.restart(pick(rng, down));
      } else if (r < 0.58) {
        sim.transferLeadership(pick(rng, [...sim.nodes.keys()]));
      }
      sim.runTicks(1);
    }
    // Heal, then every replica must catch up to the same applied index.
    sim.heal();
    sim.setNetwork({ dropRate: 0, duplicateRate: 0, minDelay: 1, maxDelay: 5 });
    for (const id of sim.nodes.keys()) sim.restart(id);
    const caughtUp = sim.runUntil(() => {
      const lead = sim.leader();
      if (lead === undefined) return false;
      const commit = sim.node(lead).raw!.raft.log.committed;
      return [...sim.nodes.values()].every((x) => x.kv.applied === commit);
    }, 600);
    if (!caughtUp)
      return { seed, stats, error: "liveness: replicas did not catch up after healing" };

    const model = new ReferenceModel();
    let acked = 0;
    const outcomes: Record<string, number> = {};
    const last = Math.max(...[...sim.nodes.values()].map((x) => x.kv.applied));
    // The bootstrap snapshot holds the first entries (configuration only).
    const first = Math.min(...log.records.keys());
    for (let i = first; i <= last; i++) {
      const rec = log.records.get(i);
      if (rec === undefined) return { seed, stats, error: `index ${i} was applied by no replica` };
      if (rec.result === undefined) continue;
      const kind = rec.result.startsWith("txn")
        ? `txn ${rec.result.split(" ")[2]}`
        : rec.result.split(" ")[0]!;
      if (rec.result.startsWith("expire") && !rec.result.endsWith("[]"))
        outcomes.expired = (outcomes.expired ?? 0) + 1;
      outcomes[kind] = (outcomes[kind] ?? 0) + 1;
      const want = model.apply(fromLog(rec.data));
      const p = proposals.get(i);
      if (p !== undefined && p.term === rec.term) acked++;
      if (rec.result !== want)
        return { seed, stats, error: `index ${i}: replicas answered ${rec.result}, model ${want}` };
    }
    const readErr = checkReads(sim, model);
    if (readErr !== undefined) return { seed, stats, error: readErr };
    Object.assign(
      stats,
      { acked, applied: last, revision: model.revision, compacted: model.compacted },
      outcomes,
    );
    return { seed, stats };
  } catch (err) {
    // A replica disagreeing throws from inside the simulator (apply, or restore on restart).
    if (err instanceof SafetyViolation || err instanceof Error)
      return { seed, stats, error: err.message };
    throw err;
  }
}

function fromLog(data: Uint8Array): Command {
  return fromBinary(CommandSchema, data);
}

/** Every replica's reads at every retained revision equal the model's state there. */
function checkReads(
  sim: Simulator<SimConsensusStateMachine>,
  model: ReferenceModel,
): string | undefined {
  for (const node of sim.nodes.values()) {
    const sm = node.kv.sm;
    if (sm.revision !== BigInt(model.revision))
      return `node ${node.id}: revision ${sm.revision}, model ${model.revision}`;
    for (let rev = Math.max(1, model.compacted); rev <= model.revision; rev++) {
      const got = sm
        .range(
          create(RangeRequestSchema, { key: b("\0"), rangeEnd: b("\0"), revision: BigInt(rev) }),
        )
        .kvs.map((kv) => kvText(plainKv(kv)));
      const want = model.matching("\0", "\0", model.states[rev]).map(kvText);
      if (got.join() !== want.join())
        return `node ${node.id} at revision ${rev}: read [${got}], model [${want}]`;
    }
    if (model.compacted > 1) {
      try {
        sm.range(
          create(RangeRequestSchema, { key: b("k"), revision: BigInt(model.compacted - 1) }),
        );
        return `node ${node.id}: read below the compacted revision ${model.compacted} succeeded`;
      } catch {
        // expected: compacted
      }
    }
  }
  return undefined;
}

const KEYS = ["k0", "k1", "k2", "k3", "k4"];

/** A random client command, aimed at the leader's current state so CAS and compaction often succeed. */
function randomOp(rng: Random, leader: ConsensusStateMachine): CommandOp {
  const revision = leader.revision;
  const key = pick(rng, KEYS);
  const r = rng();
  const lease = rng() < 0.3 ? BigInt(1 + Math.floor(rng() * 4)) : 0n;
  if (r < 0.35)
    return {
      case: "put",
      value: { key: b(key), value: b(`v${Math.floor(rng() * 1000)}`), lease, prevKv: rng() < 0.5 },
    };
  if (r < 0.55) {
    // The leader's view of the key, sometimes stale: CAS both wins and loses.
    const seen = leader.store.get(key)?.modRevision ?? 0n;
    const guess = rng() < 0.7 ? seen : seen - 1n;
    return {
      case: "txn",
      value: {
        compare: [
          {
            key: b(key),
            result: Compare_CompareResult.EQUAL,
            targetUnion: { case: "modRevision", value: guess },
          },
        ],
        success: [
          {
            request: {
              case: "requestPut",
              value: { key: b(key), value: b(`cas${guess}`), lease, prevKv: true },
            },
          },
        ],
        failure: [{ request: { case: "requestRange", value: { key: b("k"), rangeEnd: b("l") } } }],
      },
    };
  }
  if (r < 0.65) {
    const end = rng() < 0.5 ? "" : pick(rng, ["k3", "\0"]);
    return { case: "deleteRange", value: { key: b(key), rangeEnd: b(end), prevKv: rng() < 0.5 } };
  }
  if (r < 0.72)
    return { case: "compact", value: { revision: revision - BigInt(Math.floor(rng() * 4)) } };
  if (r < 0.82)
    return {
      case: "leaseGrant",
      value: {
        ttl: BigInt(1 + Math.floor(rng() * 3)),
        id: rng() < 0.5 ? 0n : BigInt(1 + Math.floor(rng() * 4)),
      },
    };
  if (r < 0.92) return { case: "leaseRenew", value: { id: BigInt(1 + Math.floor(rng() * 4)) } };
  return { case: "leaseRevoke", value: { id: BigInt(1 + Math.floor(rng() * 4)) } };
}
