import { expect } from "vitest";
import type { Message, NodeId } from "../src/index.ts";
import { encodePut, type Simulator } from "../src/sim/index.ts";

/**
 * Runs until a leader acknowledged by a majority exists (among `among`, if given, and in a term
 * above `aboveTerm`); returns its id.
 */
export function electLeader(
  sim: Simulator,
  maxTicks = 300,
  among?: NodeId[],
  aboveTerm = 0,
): NodeId {
  const ok = sim.runUntil(() => {
    const id = sim.leader();
    if (id === undefined) return false;
    if (among !== undefined && !among.includes(id)) return false;
    if (sim.node(id).raw!.raft.term <= aboveTerm) return false;
    const r = sim.node(id).raw!.raft;
    let agree = 0;
    for (const v of r.config.voters) {
      const peer = sim.nodes.get(v)?.raw?.raft;
      if (peer !== undefined && peer.term === r.term && peer.lead === id) agree++;
    }
    return agree * 2 > r.config.voters.length;
  }, maxTicks);
  expect(ok, "a leader is elected").toBe(true);
  return sim.leader()!;
}

/** Proposes key=value on the leader (or `via`) and runs until it is committed. */
export function commitPut(
  sim: Simulator,
  key: string,
  value: string,
  via?: NodeId,
  maxTicks = 100,
): { index: number; term: number } {
  const res = sim.propose(encodePut(key, value), via);
  expect(res.ok, `proposal ${key}=${value} accepted`).toBe(true);
  if (!res.ok) throw new Error("unreachable");
  const ok = sim.runUntil(() => sim.isCommitted(res.index, res.term), maxTicks);
  expect(ok, `proposal ${key}=${value} committed`).toBe(true);
  return { index: res.index, term: res.term };
}

/** Runs until every running node has applied at least `index`. */
export function waitApplied(sim: Simulator, index: number, ids?: NodeId[], maxTicks = 200): void {
  const which = ids ?? sim.upNodes();
  const ok = sim.runUntil(() => which.every((id) => sim.node(id).kv.applied >= index), maxTicks);
  expect(ok, `nodes ${which.join(",")} applied ${index}`).toBe(true);
}

/** The term of node `id`. */
export function termOf(sim: Simulator, id: NodeId): number {
  return sim.node(id).raw!.raft.term;
}

/** Counts messages passing through the simulator's network filter. */
export function countMessages(sim: Simulator, pred: (m: Message) => boolean): { n: number } {
  const counter = { n: 0 };
  const prev = sim.filter;
  sim.filter = (m) => {
    if (pred(m)) counter.n++;
    return prev === undefined ? true : prev(m);
  };
  return counter;
}
