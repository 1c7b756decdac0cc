/**
 * `@quartet/raft/sim`: a deterministic, seeded cluster simulator with Raft safety checkers,
 * for this package's tests and for the consensus service's.
 *
 * @packageDocumentation
 */
export { SafetyChecker, SafetyViolation } from "./checker.ts";
export {
  type NetworkOptions,
  type SimNode,
  type SimOptions,
  type SimRaftOptions,
  type SimStateMachine,
  Simulator,
} from "./cluster.ts";
export { EventQueue } from "./event-queue.ts";
export { type Figure8Options, figure8Run } from "./figure8.ts";
export { encodePut, hashEntry, KvStateMachine } from "./kv.ts";
export { type RandomRunOptions, type RandomRunResult, randomRun } from "./random-run.ts";
