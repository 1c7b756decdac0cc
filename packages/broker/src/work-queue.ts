import { Deque } from "./deque.ts";
import { BrokerError } from "./errors.ts";

/** Settings fixed when a queue is created. */
export interface QueueSettings {
  /** Deliveries of one message before it is dead-lettered. */
  maxDeliveries: number;
  /** How long a delivery may stay unacknowledged before it is redelivered. */
  ackDeadlineMs: number;
  /** Stored on disk (see QueueStore). */
  durable: boolean;
  /** Most messages (ready, delayed, in flight) the queue holds. */
  maxLength: number;
}

export const defaultQueueSettings: QueueSettings = {
  maxDeliveries: 5,
  ackDeadlineMs: 30_000,
  durable: false,
  maxLength: 1_000_000,
};

/** A job on a work queue. */
export interface QueueItem {
  payload: Uint8Array;
  headers: { [name: string]: string };
}

/** A stored message, as the journal and recovery see it. */
export interface StoredMessage extends QueueItem {
  seq: number;
  dead: boolean;
}

/** Counters that survive restarts of a durable queue. */
export interface QueueCounters {
  enqueued: number;
  acked: number;
  redelivered: number;
  deadLettered: number;
  /** Messages removed by purge(). */
  purged?: number;
  /** Next sequence number to give. */
  nextSeq: number;
}

/**
 * Receives every change to a queue's stored state, synchronously and in order. The durable
 * store writes them in the same (atomic) transaction per event turn, so a crash leaves a
 * prefix of the changes; callers wait for `flushed` before acknowledging.
 */
export interface QueueJournal {
  put(queue: string, message: StoredMessage): void;
  remove(queue: string, seq: number): void;
  counters(queue: string, counters: QueueCounters): void;
}

/** One attempt to hand a message to a consumer. */
export interface Delivery {
  deliveryId: number;
  seq: number;
  attempt: number;
  item: QueueItem;
}

/** A consumer attached to a queue: it receives deliveries while it has credit. */
export interface ConsumerSink {
  /** Most unacknowledged deliveries at once. */
  maxInFlight: number;
  deliver(deliveries: Delivery[]): void;
}

export interface QueueStats {
  depth: number;
  inFlight: number;
  deadLetters: number;
  enqueuedTotal: number;
  ackedTotal: number;
  redeliveredTotal: number;
  deadLetteredTotal: number;
  purgedTotal: number;
  consumers: number;
}

interface Entry extends StoredMessage {
  /** Deliveries so far (this broker lifetime). */
  deliveries: number;
  state: "held" | "ready" | "delayed" | "in-flight" | "dead";
  readyAt: number;
}

interface InFlight {
  id: number;
  entry: Entry;
  consumer: Consumer;
  deadline: number;
}

interface Consumer {
  id: number;
  sink: ConsumerSink;
  inFlight: Set<number>;
}

/** Delivery ids carry the broker's restart epoch in their high bits, so ids never repeat. */
const EPOCH_SHIFT = 2 ** 32;

/**
 * A work queue with at-least-once delivery: the pure core, with time from `now()`.
 * Messages go to consumers with credit, round robin; each delivery must be acked before its
 * deadline or the message is redelivered; after `maxDeliveries` it is dead-lettered. Call
 * `tick()` at `nextWakeAt()` to expire deadlines and release delayed messages.
 */
export class WorkQueue {
  readonly name: string;
  readonly settings: QueueSettings;
  private readonly now: () => number;
  private readonly journal: QueueJournal | undefined;
  private readonly onDeadLetter:
    | ((queue: string, seq: number, deliveries: number) => void)
    | undefined;
  private readonly entries = new Map<number, Entry>();
  /** Ready sequence numbers; redeliveries go first so old messages are not starved. */
  private readonly retry = new Deque<Entry>();
  private readonly fresh = new Deque<Entry>();
  private readonly delayed: Entry[] = [];
  private readonly inFlight = new Map<number, InFlight>();
  /** Delivery ids in deadline order (deadlines grow with time, all have the same length). */
  private readonly deadlines = new Deque<number>();
  private readonly consumers = new Map<number, Consumer>();
  private consumerOrder: Consumer[] = [];
  private turn = 0;
  private nextConsumer = 1;
  private readonly epoch: number;
  /** Low bits of the next delivery id; ids start at 1 so 0 is never valid. */
  private nextDelivery = 1;
  private counters: QueueCounters;
  private dead = 0;
  private held = 0;

  constructor(
    name: string,
    settings: QueueSettings,
    options: {
      now: () => number;
      /** Restart count of the broker, 0 to 2^20; makes delivery ids unique across restarts. */
      epoch?: number;
      journal?: QueueJournal;
      /** Told about each message moved to the dead-letter queue, e.g. to log it. */
      onDeadLetter?: (queue: string, seq: number, deliveries: number) => void;
      /** Recovered state of a durable queue. */
      recovered?: { messages: Iterable<StoredMessage>; counters: QueueCounters };
    },
  ) {
    this.name = name;
    this.settings = settings;
    this.now = options.now;
    this.journal = options.journal;
    this.onDeadLetter = options.onDeadLetter;
    this.epoch = options.epoch ?? 0;
    this.counters = options.recovered
      ? { ...options.recovered.counters }
      : { enqueued: 0, acked: 0, redelivered: 0, deadLettered: 0, nextSeq: 1 };
    for (const m of options.recovered?.messages ?? []) {
      const entry: Entry = { ...m, deliveries: 0, state: m.dead ? "dead" : "ready", readyAt: 0 };
      this.entries.set(m.seq, entry);
      if (m.dead) this.dead++;
      else this.fresh.push(entry);
    }
  }

  /**
   * Appends messages; returns their sequence numbers. With `held`, they are stored but not
   * delivered until `release()` (the durable shell releases them once they are on disk, so
   * no consumer ever sees a message a crash could take back).
   */
  enqueue(items: readonly QueueItem[], options: { held?: boolean } = {}): number[] {
    if (this.entries.size + items.length > this.settings.maxLength) {
      throw new BrokerError(
        "resource_exhausted",
        `queue ${this.name} holds ${this.entries.size} messages and its max_length is ${this.settings.maxLength}; consume or purge it first`,
      );
    }
    const seqs = new Array<number>(items.length);
    for (let i = 0; i < items.length; i++) {
      const item = items[i]!;
      const seq = this.counters.nextSeq++;
      const entry: Entry = {
        seq,
        payload: item.payload,
        headers: item.headers,
        dead: false,
        deliveries: 0,
        state: "ready",
        readyAt: 0,
      };
      this.entries.set(seq, entry);
      if (options.held) {
        entry.state = "held";
        this.held++;
      } else this.fresh.push(entry);
      this.journal?.put(this.name, entry);
      seqs[i] = seq;
    }
    this.counters.enqueued += items.length;
    this.saveCounters();
    this.dispatch();
    return seqs;
  }

  /** Makes held messages deliverable, in the given order. */
  release(seqs: readonly number[]): void {
    for (const seq of seqs) {
      const entry = this.entries.get(seq);
      if (entry?.state !== "held") continue;
      entry.state = "ready";
      this.held--;
      this.fresh.push(entry);
    }
    this.dispatch();
  }

  /** Attaches a consumer; it gets deliveries at once if messages are ready. */
  attach(sink: ConsumerSink): number {
    const consumer: Consumer = { id: this.nextConsumer++, sink, inFlight: new Set() };
    this.consumers.set(consumer.id, consumer);
    this.consumerOrder = [...this.consumers.values()];
    this.dispatch();
    return consumer.id;
  }

  /** Detaches a consumer; its unacknowledged messages are ready again at once. */
  detach(consumerId: number): void {
    const consumer = this.consumers.get(consumerId);
    if (!consumer) return;
    this.consumers.delete(consumerId);
    this.consumerOrder = [...this.consumers.values()];
    for (const id of consumer.inFlight) this.takeBack(id, 0);
    this.saveCounters();
    this.dispatch();
  }

  /** Acknowledges deliveries: all are checked first, then all are removed. */
  ack(deliveryIds: readonly number[]): void {
    const flights = this.check(deliveryIds, "ack");
    for (const flight of flights) {
      this.finish(flight);
      this.entries.delete(flight.entry.seq);
      this.journal?.remove(this.name, flight.entry.seq);
    }
    this.counters.acked += flights.length;
    this.saveCounters();
    this.dispatch();
  }

  /** Gives deliveries back, ready after `delayMs`; returns how many were dead-lettered. */
  nack(deliveryIds: readonly number[], delayMs: number): number {
    const flights = this.check(deliveryIds, "nack");
    let deadLettered = 0;
    for (const flight of flights) {
      this.finish(flight);
      if (this.requeue(flight.entry, delayMs)) deadLettered++;
    }
    this.saveCounters();
    this.dispatch();
    return deadLettered;
  }

  /** Expires deadlines and releases delayed messages due by now. */
  tick(): void {
    const now = this.now();
    let changed = false;
    while (this.deadlines.length > 0) {
      const id = this.deadlines.peek()!;
      const flight = this.inFlight.get(id);
      if (flight && flight.deadline > now) break;
      this.deadlines.shift();
      if (flight) {
        this.takeBack(id, 0);
        changed = true;
      }
    }
    if (this.delayed.length > 0) {
      this.delayed.sort((a, b) => a.readyAt - b.readyAt);
      while (this.delayed.length > 0 && this.delayed[0]!.readyAt <= now) {
        const entry = this.delayed.shift()!;
        entry.state = "ready";
        this.retry.push(entry);
        changed = true;
      }
    }
    if (changed) {
      this.saveCounters();
      this.dispatch();
    }
  }

  /** When `tick()` next has work, or undefined when nothing waits on time. */
  nextWakeAt(): number | undefined {
    let wake: number | undefined;
    while (this.deadlines.length > 0 && !this.inFlight.has(this.deadlines.peek()!)) {
      this.deadlines.shift();
    }
    const id = this.deadlines.peek();
    if (id !== undefined) wake = this.inFlight.get(id)!.deadline;
    for (const e of this.delayed) if (wake === undefined || e.readyAt < wake) wake = e.readyAt;
    return wake;
  }

  /** Removes ready and delayed messages; returns how many. */
  purge(): number {
    let purged = 0;
    for (const entry of [...this.retry.drain(), ...this.fresh.drain(), ...this.delayed.splice(0)]) {
      this.entries.delete(entry.seq);
      this.journal?.remove(this.name, entry.seq);
      purged++;
    }
    this.counters.purged = (this.counters.purged ?? 0) + purged;
    this.saveCounters();
    return purged;
  }

  /** Moves dead letters back to the queue with their delivery count reset. */
  redrive(): number {
    let moved = 0;
    for (const entry of this.entries.values()) {
      if (entry.state !== "dead") continue;
      entry.state = "ready";
      entry.dead = false;
      entry.deliveries = 0;
      this.retry.push(entry);
      this.journal?.put(this.name, entry);
      moved++;
    }
    this.dead -= moved;
    this.dispatch();
    return moved;
  }

  /** Dead letters, oldest first, up to `limit`. */
  deadLetters(limit: number): StoredMessage[] {
    const out: StoredMessage[] = [];
    for (const e of this.entries.values()) {
      if (out.length >= limit) break;
      if (e.state === "dead")
        out.push({ seq: e.seq, payload: e.payload, headers: e.headers, dead: true });
    }
    return out;
  }

  stats(): QueueStats {
    return {
      depth: this.entries.size - this.inFlight.size - this.dead - this.held,
      inFlight: this.inFlight.size,
      deadLetters: this.dead,
      enqueuedTotal: this.counters.enqueued,
      ackedTotal: this.counters.acked,
      redeliveredTotal: this.counters.redelivered,
      deadLetteredTotal: this.counters.deadLettered,
      purgedTotal: this.counters.purged ?? 0,
      consumers: this.consumers.size,
    };
  }

  /** Detaches every consumer without requeueing (the queue is going away). */
  close(): void {
    this.consumers.clear();
    this.consumerOrder = [];
  }

  private check(deliveryIds: readonly number[], verb: string): InFlight[] {
    if (deliveryIds.length === 0) {
      throw new BrokerError("invalid_argument", `${verb} needs at least one delivery id`);
    }
    const flights: InFlight[] = [];
    const seen = new Set<number>();
    for (const id of deliveryIds) {
      const flight = this.inFlight.get(id);
      if (flight && !seen.has(id)) {
        seen.add(id);
        flights.push(flight);
        continue;
      }
      if (seen.has(id)) {
        throw new BrokerError(
          "invalid_argument",
          `delivery ${id} appears twice in one ${verb}; nothing was changed`,
        );
      }
      const epoch = Math.floor(id / EPOCH_SHIFT);
      const low = id % EPOCH_SHIFT;
      const issued =
        low > 0 && (epoch < this.epoch || (epoch === this.epoch && low < this.nextDelivery));
      if (issued) {
        throw new BrokerError(
          "failed_precondition",
          `delivery ${id} on queue ${this.name} is no longer in flight: it was already acked or nacked, its ack deadline passed, its consumer went away, or the broker restarted; nothing was changed`,
        );
      }
      throw new BrokerError(
        "not_found",
        `queue ${this.name} never issued delivery ${id}; nothing was changed`,
      );
    }
    return flights;
  }

  private finish(flight: InFlight): void {
    this.inFlight.delete(flight.id);
    flight.consumer.inFlight.delete(flight.id);
  }

  /** Takes a delivery back (deadline passed, consumer gone) and requeues its message. */
  private takeBack(deliveryId: number, delayMs: number): void {
    const flight = this.inFlight.get(deliveryId);
    if (!flight) return;
    this.finish(flight);
    this.requeue(flight.entry, delayMs);
  }

  /** Returns true when the message was dead-lettered instead. */
  private requeue(entry: Entry, delayMs: number): boolean {
    if (entry.deliveries >= this.settings.maxDeliveries) {
      entry.state = "dead";
      entry.dead = true;
      this.dead++;
      this.counters.deadLettered++;
      this.journal?.put(this.name, entry);
      this.onDeadLetter?.(this.name, entry.seq, entry.deliveries);
      return true;
    }
    if (delayMs > 0) {
      entry.state = "delayed";
      entry.readyAt = this.now() + delayMs;
      this.delayed.push(entry);
    } else {
      entry.state = "ready";
      this.retry.push(entry);
    }
    return false;
  }

  private dispatch(): void {
    const consumers = this.consumerOrder;
    if (consumers.length === 0) return;
    const batches = new Map<Consumer, Delivery[]>();
    const now = this.now();
    let idle = 0;
    const redelivered = this.counters.redelivered;
    // Round robin, one message per consumer with credit per pass, until no credit or no work.
    while (idle < consumers.length && (this.retry.length > 0 || this.fresh.length > 0)) {
      const consumer = consumers[this.turn++ % consumers.length]!;
      if (consumer.inFlight.size >= consumer.sink.maxInFlight) {
        idle++;
        continue;
      }
      idle = 0;
      const entry = (this.retry.length > 0 ? this.retry.shift() : this.fresh.shift())!;
      entry.state = "in-flight";
      entry.deliveries++;
      if (entry.deliveries > 1) this.counters.redelivered++;
      const id = this.epoch * EPOCH_SHIFT + this.nextDelivery++;
      const flight: InFlight = { id, entry, consumer, deadline: now + this.settings.ackDeadlineMs };
      this.inFlight.set(id, flight);
      this.deadlines.push(id);
      consumer.inFlight.add(id);
      const delivery: Delivery = {
        deliveryId: id,
        seq: entry.seq,
        attempt: entry.deliveries,
        item: { payload: entry.payload, headers: entry.headers },
      };
      const batch = batches.get(consumer);
      if (batch) batch.push(delivery);
      else batches.set(consumer, [delivery]);
    }
    if (this.counters.redelivered !== redelivered) this.saveCounters();
    for (const [consumer, deliveries] of batches) consumer.sink.deliver(deliveries);
  }

  private saveCounters(): void {
    this.journal?.counters(this.name, this.counters);
  }
}
