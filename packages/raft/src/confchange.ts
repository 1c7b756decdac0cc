import type { ConfChange, ConfState, NodeId } from "./types.ts";

/** A membership as the core tracks it (the same shape as {@link ConfState}). */
export type MembershipConfig = ConfState;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Encodes a ConfChange as the data of a `confChange` entry. */
export function encodeConfChange(cc: ConfChange): Uint8Array {
  return encoder.encode(JSON.stringify(cc));
}

/** Decodes the data of a `confChange` entry. */
export function decodeConfChange(data: Uint8Array): ConfChange {
  return JSON.parse(decoder.decode(data)) as ConfChange;
}

/** Whether `cc` goes through joint consensus. */
export function entersJoint(cc: ConfChange): boolean {
  const t = cc.transition ?? "auto";
  return t !== "auto" || cc.changes.length > 1;
}

export function isJoint(cfg: MembershipConfig): boolean {
  return cfg.votersOutgoing.length > 0;
}

/** Every node that has a say or receives the log: voters of both halves and learners. */
export function members(cfg: MembershipConfig): NodeId[] {
  const ids = new Set<NodeId>([...cfg.voters, ...cfg.votersOutgoing, ...cfg.learners]);
  return [...ids].sort((a, b) => a - b);
}

/**
 * Returns the membership after applying `cc` to `cfg`, or throws an Error explaining why the
 * change is not allowed: more than one voter changed without joint consensus, entering a joint
 * config twice, leaving a non-joint one, or removing every voter.
 */
export function applyConfChange(cfg: MembershipConfig, cc: ConfChange): MembershipConfig {
  if (cc.changes.length === 0) return leaveJoint(cfg);
  if (entersJoint(cc)) return enterJoint(cfg, cc);
  return simple(cfg, cc);
}

function copy(cfg: MembershipConfig): MembershipConfig {
  return {
    voters: [...cfg.voters],
    learners: [...cfg.learners],
    votersOutgoing: [...cfg.votersOutgoing],
    learnersNext: [...cfg.learnersNext],
    autoLeave: cfg.autoLeave,
  };
}

function leaveJoint(cfg: MembershipConfig): MembershipConfig {
  if (!isJoint(cfg)) throw new Error("can't leave a non-joint config");
  const out = copy(cfg);
  for (const id of out.learnersNext) add(out.learners, id);
  out.learnersNext = [];
  out.votersOutgoing = [];
  out.autoLeave = false;
  return normalize(out);
}

function enterJoint(cfg: MembershipConfig, cc: ConfChange): MembershipConfig {
  if (isJoint(cfg)) throw new Error("config is already joint");
  if (cfg.voters.length === 0) throw new Error("can't make a zero-voter config joint");
  const out = copy(cfg);
  out.votersOutgoing = [...cfg.voters];
  applyChanges(out, cc);
  out.autoLeave = (cc.transition ?? "auto") !== "explicit";
  return normalize(out);
}

function simple(cfg: MembershipConfig, cc: ConfChange): MembershipConfig {
  if (isJoint(cfg)) throw new Error("can't apply a simple config change in a joint config");
  const out = copy(cfg);
  applyChanges(out, cc);
  const before = new Set(cfg.voters);
  const after = new Set(out.voters);
  let diff = 0;
  for (const id of before) if (!after.has(id)) diff++;
  for (const id of after) if (!before.has(id)) diff++;
  if (diff > 1) throw new Error("more than one voter changed without entering joint config");
  return normalize(out);
}

function applyChanges(cfg: MembershipConfig, cc: ConfChange): void {
  for (const c of cc.changes) {
    if (!Number.isInteger(c.nodeId) || c.nodeId <= 0)
      throw new Error(`invalid node id ${c.nodeId} in conf change`);
    switch (c.type) {
      case "addNode":
        remove(cfg.learners, c.nodeId);
        remove(cfg.learnersNext, c.nodeId);
        add(cfg.voters, c.nodeId);
        break;
      case "addLearner":
        makeLearner(cfg, c.nodeId);
        break;
      case "removeNode":
        remove(cfg.voters, c.nodeId);
        remove(cfg.learners, c.nodeId);
        remove(cfg.learnersNext, c.nodeId);
        break;
      default:
        throw new Error(`unknown conf change type ${(c as { type: string }).type}`);
    }
  }
  if (cfg.voters.length === 0) throw new Error("removed all voters");
}

function makeLearner(cfg: MembershipConfig, id: NodeId): void {
  if (cfg.learners.includes(id)) return;
  remove(cfg.voters, id);
  remove(cfg.learnersNext, id);
  // A voter of the outgoing half can't also be a learner: stage it until the joint config is
  // left.
  if (cfg.votersOutgoing.includes(id)) add(cfg.learnersNext, id);
  else add(cfg.learners, id);
}

function add(ids: NodeId[], id: NodeId): void {
  if (!ids.includes(id)) ids.push(id);
}

function remove(ids: NodeId[], id: NodeId): void {
  const i = ids.indexOf(id);
  if (i >= 0) ids.splice(i, 1);
}

function normalize(cfg: MembershipConfig): MembershipConfig {
  const byId = (a: NodeId, b: NodeId) => a - b;
  cfg.voters.sort(byId);
  cfg.learners.sort(byId);
  cfg.votersOutgoing.sort(byId);
  cfg.learnersNext.sort(byId);
  return cfg;
}
