import { fromBinary } from "@bufbuild/protobuf";
import { CommandSchema } from "@quartet/proto/quartet/consensus/v1/internal_pb";
import type { Entry } from "@quartet/raft";
import { hashEntry, type SimStateMachine } from "@quartet/raft/sim";
import { ConsensusStateMachine } from "../../src/state/state-machine.ts";
import { kvText, plainKv, summarize } from "./summary.ts";

/** What the first replica to apply an index produced; later replicas must produce the same. */
export interface AppliedRecord {
  term: number;
  data: Uint8Array;
  /** The summarized result (normal entries with a command only). */
  result: string | undefined;
  /** The summarized watch events the entry produced. */
  events: string;
  /** The state machine's snapshot bytes after the entry. */
  state: Uint8Array;
}

/** Shared by every replica of one simulated cluster: index -> what applying it produced. */
export class AppliedLog {
  readonly records = new Map<number, AppliedRecord>();

  check(node: string, index: number, rec: AppliedRecord): void {
    const first = this.records.get(index);
    if (first === undefined) {
      this.records.set(index, rec);
      return;
    }
    if (first.result !== rec.result)
      throw new Error(`${node} index ${index}: result ${rec.result} != ${first.result}`);
    if (first.events !== rec.events)
      throw new Error(`${node} index ${index}: events ${rec.events} != ${first.events}`);
    if (Buffer.compare(first.state, rec.state) !== 0)
      throw new Error(`${node} index ${index}: state differs from the first replica's`);
  }

  /** A replica restored from a snapshot must hold the state others had at that index. */
  checkRestore(node: string, index: number, state: Uint8Array): void {
    const first = this.records.get(index);
    if (first !== undefined && Buffer.compare(first.state, state) !== 0)
      throw new Error(`${node} restored index ${index}: state differs from the replicas'`);
  }
}

/**
 * The consensus state machine inside the @quartet/raft simulator: normal entries are Command
 * protobufs; snapshot data is the rolling entry hash (4 bytes) then the state machine's bytes.
 */
export class SimConsensusStateMachine implements SimStateMachine {
  applied: number;
  hash: number;
  readonly sm: ConsensusStateMachine;
  private readonly log: AppliedLog;

  private constructor(applied: number, hash: number, sm: ConsensusStateMachine, log: AppliedLog) {
    this.applied = applied;
    this.hash = hash;
    this.sm = sm;
    this.log = log;
  }

  static restore(log: AppliedLog, index: number, data: Uint8Array): SimConsensusStateMachine {
    if (data.byteLength === 0)
      return new SimConsensusStateMachine(index, 0, new ConsensusStateMachine(), log);
    const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
    const state = data.subarray(4);
    const sm = ConsensusStateMachine.restore(state);
    log.checkRestore("a replica", index, sm.encode());
    return new SimConsensusStateMachine(index, view.getUint32(0), sm, log);
  }

  apply(e: Entry): void {
    if (e.index !== this.applied + 1)
      throw new Error(`apply: entry ${e.index} does not follow applied ${this.applied}`);
    this.applied = e.index;
    this.hash = hashEntry(this.hash, e);
    let result: string | undefined;
    let events = "";
    if (e.type === "normal" && e.data.byteLength > 0) {
      const applied = this.sm.apply(fromBinary(CommandSchema, e.data));
      result = summarize(applied.result);
      events = applied.events
        .map(
          (ev) =>
            `${ev.type} ${kvText(ev.kv && plainKv(ev.kv))} ${kvText(ev.prevKv && plainKv(ev.prevKv))}`,
        )
        .join(";");
    }
    this.log.check("a replica", e.index, {
      term: e.term,
      data: e.data,
      result,
      events,
      state: this.sm.encode(),
    });
  }

  encode(): Uint8Array {
    const state = this.sm.encode();
    const out = new Uint8Array(4 + state.byteLength);
    new DataView(out.buffer).setUint32(0, this.hash);
    out.set(state, 4);
    return out;
  }
}
