/**
 * @quartet/raft: a pure, deterministic Raft core in the style of etcd's raft library.
 *
 * Drive a {@link RawNode} with `tick()`, `step(message)` and `propose(data)`; handle each
 * {@link Ready} (persist, then send, then apply) and `advance()`. See the package README for the
 * contract. The deterministic cluster simulator is exported from `@quartet/raft/sim`.
 *
 * @packageDocumentation
 */

// The seeded generator behind `RaftConfig.rng`; defined in @quartet/determinism.
export { type Random, seededRandom } from "@quartet/determinism";
export {
  applyConfChange as applyConfChangeToState,
  decodeConfChange,
  encodeConfChange,
} from "./confchange.ts";
export {
  Raft,
  type RaftConfig,
  type ReadOnlyOption,
  type UnsafeTestingFaults,
} from "./raft.ts";
export { RawNode, type Ready, type Status } from "./rawnode.ts";
export {
  COMPACTED,
  emptyConfState,
  MemoryStorage,
  type Storage,
  UNAVAILABLE,
} from "./storage.ts";
export * from "./types.ts";
