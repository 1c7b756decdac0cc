import { randomBytes } from "node:crypto";
import { Code, ConnectError } from "@connectrpc/connect";

interface Issued {
  queue: string;
  /** The work queue's own (sequential, never sent) id of the delivery. */
  internal: number;
  stream: ReceiveStream;
}

/** The deliveries one Receive stream was handed and has not settled, newest last. */
export interface ReceiveStream {
  readonly owner: string;
  readonly ids: Set<bigint>;
  readonly maxInFlight: number;
}

/**
 * Delivery ids as clients see them: random 64-bit numbers bound to the Receive stream that
 * got them. Ack or Nack of an id by another identity, on another queue, or never issued is
 * NotFound and changes nothing; sequential ids would let anyone settle others' work.
 */
export class DeliveryIds {
  private readonly issued = new Map<bigint, Issued>();

  open(owner: string, maxInFlight: number): ReceiveStream {
    return { owner, ids: new Set(), maxInFlight };
  }

  issue(stream: ReceiveStream, queue: string, internal: number): bigint {
    let id: bigint;
    do id = randomBytes(8).readBigUInt64BE();
    while (id === 0n || this.issued.has(id));
    this.issued.set(id, { queue, internal, stream });
    stream.ids.add(id);
    // A stream holds at most maxInFlight live deliveries; older ids than that are expired
    // (deadlines all have the same length), so forgetting them bounds memory safely.
    while (stream.ids.size > stream.maxInFlight) {
      const oldest = stream.ids.values().next().value!;
      stream.ids.delete(oldest);
      this.issued.delete(oldest);
    }
    return id;
  }

  /** Forgets a stream's ids when it ends: its deliveries went back to the queue. */
  close(stream: ReceiveStream): void {
    for (const id of stream.ids) this.issued.delete(id);
    stream.ids.clear();
  }

  /** Resolves and forgets ids settled by `owner` on `queue`; throws before forgetting any. */
  settle(owner: string, queue: string, ids: readonly bigint[], verb: string): number[] {
    const found = ids.map((id, i) => {
      const d = this.issued.get(id);
      if (!d || d.stream.owner !== owner || d.queue !== queue) {
        throw new ConnectError(
          `delivery_ids[${i}]: delivery ${id} is not in flight to you on queue ${queue} (never issued to you, already settled, or its Receive stream ended); nothing was ${verb}ed`,
          Code.NotFound,
        );
      }
      return d;
    });
    return found.map((d, i) => {
      this.issued.delete(ids[i]!);
      d.stream.ids.delete(ids[i]!);
      return d.internal;
    });
  }
}
