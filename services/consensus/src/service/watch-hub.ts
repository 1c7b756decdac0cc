import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import type { KeyValue } from "@quartet/proto/quartet/consensus/v1/kv_pb";
import {
  type Event,
  Event_EventType,
  EventSchema,
} from "@quartet/proto/quartet/consensus/v1/watch_pb";
import { inRange, type KeyRange, keyRange, keyString } from "../state/keys.ts";
import type { ConsensusStateMachine } from "../state/state-machine.ts";

/** Events a slow watcher may have waiting before its stream is ended (it resumes). */
const maxPendingEvents = 100_000;

interface Watcher {
  range: KeyRange;
  prevKv: boolean;
  /** Events already sent or queued are at or below this revision. */
  sentUpTo: bigint;
  queue: Event[];
  wake: (() => void) | undefined;
  error: ConnectError | undefined;
}

/**
 * Fans the events of applied commands out to the watchers of this member, in revision order,
 * each exactly once. A watcher from a past revision first gets the retained history from the
 * MVCC store, in the same event-loop turn as it starts listening, so nothing falls between
 * history and live events. A watcher that falls too far behind, and every watcher when this
 * member jumps ahead by installing a snapshot (which has no events), is ended with a clear
 * error: the client resumes from the last revision it saw.
 */
export class WatchHub {
  private readonly watchers = new Set<Watcher>();

  watching(): boolean {
    return this.watchers.size > 0;
  }

  publish(events: readonly Event[], revision: bigint): void {
    for (const w of this.watchers) {
      for (const e of events) {
        const kv = e.kv;
        if (!kv || kv.modRevision <= w.sentUpTo || !inRange(w.range, keyString(kv.key))) continue;
        w.queue.push(w.prevKv ? e : create(EventSchema, { type: e.type, kv }));
      }
      w.sentUpTo = revision > w.sentUpTo ? revision : w.sentUpTo;
      if (w.queue.length > maxPendingEvents) {
        this.end(
          w,
          new ConnectError(
            `this watcher fell ${w.queue.length} events behind: resume from the last revision you saw + 1`,
            Code.ResourceExhausted,
          ),
        );
      }
      w.wake?.();
    }
  }

  /** Ends every watcher: this member's state jumped (a snapshot) without events. */
  reset(revision: bigint): void {
    for (const w of this.watchers) {
      this.end(
        w,
        new ConnectError(
          `this member caught up to revision ${revision} from a snapshot: resume from the last revision you saw + 1`,
          Code.Unavailable,
        ),
      );
    }
  }

  /**
   * Streams batches of events for `key`/`rangeEnd` from `startRevision` (0: from now); the
   * caller has checked that the start is not compacted.
   */
  async *watch(
    sm: ConsensusStateMachine,
    req: { key: Uint8Array; rangeEnd: Uint8Array; startRevision: bigint; prevKv: boolean },
    signal: AbortSignal,
    /** With it, an empty batch at least this often when nothing happens (progress notify). */
    progressMs?: number,
  ): AsyncGenerator<Event[]> {
    const range = keyRange(req.key, req.rangeEnd);
    const history =
      req.startRevision > 0n ? historySince(sm, range, req.startRevision, req.prevKv) : [];
    const w: Watcher = {
      range,
      prevKv: req.prevKv,
      sentUpTo: sm.revision,
      queue: history,
      wake: undefined,
      error: undefined,
    };
    this.watchers.add(w);
    const onAbort = () => w.wake?.();
    signal.addEventListener("abort", onAbort);
    let quiet = false;
    const progress = progressMs
      ? setInterval(() => {
          quiet = true;
          w.wake?.();
        }, progressMs)
      : undefined;
    try {
      for (;;) {
        if (w.error) throw w.error;
        if (signal.aborted) return;
        if (w.queue.length > 0 || quiet) {
          const batch = w.queue;
          w.queue = [];
          quiet = false;
          yield batch;
          continue;
        }
        await new Promise<void>((resolve) => {
          w.wake = resolve;
        });
        w.wake = undefined;
      }
    } finally {
      clearInterval(progress);
      signal.removeEventListener("abort", onAbort);
      this.watchers.delete(w);
    }
  }

  private end(w: Watcher, error: ConnectError): void {
    w.error = error;
    w.queue = [];
    this.watchers.delete(w);
    w.wake?.();
  }
}

/** The retained changes in `range` at revisions >= `from`, in (revision, position) order. */
function historySince(
  sm: ConsensusStateMachine,
  range: KeyRange,
  from: bigint,
  prevKv: boolean,
): Event[] {
  const found: { rev: bigint; sub: number; event: Event }[] = [];
  for (const [, records] of sm.store.historiesSince(range, from)) {
    records.forEach((r, i) => {
      if (r.kv.modRevision < from) return;
      const prev: KeyValue | undefined =
        prevKv && i > 0 && !records[i - 1]!.tombstone ? records[i - 1]!.kv : undefined;
      const event = create(EventSchema, {
        type: r.tombstone ? Event_EventType.DELETE : Event_EventType.PUT,
        kv: r.kv,
        ...(prev ? { prevKv: prev } : {}),
      });
      found.push({ rev: r.kv.modRevision, sub: r.sub, event });
    });
  }
  found.sort((a, b) => (a.rev < b.rev ? -1 : a.rev > b.rev ? 1 : a.sub - b.sub));
  return found.map((f) => f.event);
}
