import { fromBinary } from "@bufbuild/protobuf";
import { type CommandResult, CommandSchema } from "@quartet/proto/quartet/consensus/v1/internal_pb";
import type { Event } from "@quartet/proto/quartet/consensus/v1/watch_pb";
import type { StateMachine } from "../node/raft-node.ts";
import { ConsensusStateMachine } from "../state/state-machine.ts";

/**
 * Adapts the pure ConsensusStateMachine to the Raft node: log entries are encoded Commands,
 * a snapshot is the state machine's canonical encoding, and the watch events each applied
 * command produces go to `onEvents` (the watch hub) in revision order.
 */
export class ReplicatedState implements StateMachine {
  private sm = new ConsensusStateMachine();
  private readonly onEvents: (events: Event[], revision: bigint) => void;

  constructor(onEvents: (events: Event[], revision: bigint) => void = () => {}) {
    this.onEvents = onEvents;
  }

  /** The current state, for reads (never mutate it). */
  get current(): ConsensusStateMachine {
    return this.sm;
  }

  apply(_index: number, data: Uint8Array): CommandResult {
    const applied = this.sm.apply(fromBinary(CommandSchema, data));
    if (applied.events.length > 0) this.onEvents(applied.events, this.sm.revision);
    return applied.result;
  }

  snapshot(): Uint8Array {
    return this.sm.encode();
  }

  restore(_index: number, data: Uint8Array): void {
    this.sm =
      data.byteLength === 0 ? new ConsensusStateMachine() : ConsensusStateMachine.restore(data);
  }
}
