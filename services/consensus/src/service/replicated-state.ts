import type { CommandResult } from "@quartet/proto/quartet/consensus/v1/internal_pb";
import type { Event } from "@quartet/proto/quartet/consensus/v1/watch_pb";
import type { StateMachine } from "../node/raft-node.ts";
import { ConsensusStateMachine } from "../state/state-machine.ts";
import { decodeCommand } from "./commands.ts";

/** Told of the events each applied command produced, and of a jump to a snapshot. */
export interface StateListener {
  /** Whether anyone would receive events now; when not, applying makes none. */
  watching(): boolean;
  publish(events: readonly Event[], revision: bigint): void;
  reset(revision: bigint): void;
}

/**
 * Adapts the pure ConsensusStateMachine to the Raft node: log entries are encoded Commands,
 * a snapshot is the state machine's canonical encoding, and the watch events each applied
 * command produces go to the listener (the watch hub) in revision order.
 */
export class ReplicatedState implements StateMachine {
  private sm = new ConsensusStateMachine();
  private readonly listener: StateListener | undefined;

  constructor(listener?: StateListener) {
    this.listener = listener;
  }

  /** The current state, for reads (never mutate it). */
  get current(): ConsensusStateMachine {
    return this.sm;
  }

  apply(_index: number, data: Uint8Array): CommandResult {
    const applied = this.sm.apply(decodeCommand(data), this.listener?.watching() ?? false);
    if (applied.events.length > 0) this.listener?.publish(applied.events, this.sm.revision);
    return applied.result;
  }

  snapshot(): Promise<Uint8Array[]> {
    return Promise.resolve(this.sm.snapshot());
  }

  restore(_index: number, data: Uint8Array): void {
    this.sm =
      data.byteLength === 0 ? new ConsensusStateMachine() : ConsensusStateMachine.restore(data);
    this.listener?.reset(this.sm.revision);
  }
}
