import { type Clock, systemClock } from "@quartet/determinism";
import { BrokerError } from "./errors.ts";
import type { LmdbQueueStore } from "./lmdb-store.ts";
import {
  type ConsumerSink,
  type QueueItem,
  type QueueSettings,
  type QueueStats,
  WorkQueue,
} from "./work-queue.ts";

const QUEUE_NAME = /^[A-Za-z0-9_.-]{1,64}$/;

/** Checks a queue name; throws `invalid_argument` saying what is allowed. */
export function checkQueueName(name: string): void {
  if (!QUEUE_NAME.test(name)) {
    throw new BrokerError(
      "invalid_argument",
      name.length === 0
        ? "queue name is empty; use 1 to 64 characters of [A-Za-z0-9_.-]"
        : `queue name ${JSON.stringify(name.slice(0, 80))} is invalid; use 1 to 64 characters of [A-Za-z0-9_.-]`,
    );
  }
}

interface Held {
  queue: WorkQueue;
  timer: unknown;
  wakeAt: number | undefined;
  /** Called when the queue is deleted, to end its consumers' streams. */
  onDelete: Set<() => void>;
}

/**
 * The broker's work queues: the pure WorkQueue cores plus the I/O around them: the durable
 * store (awaited before an enqueue or ack is acknowledged) and the timers that drive ack
 * deadlines and delayed redeliveries.
 */
export class Queues {
  private readonly held = new Map<string, Held>();
  private readonly store: LmdbQueueStore | undefined;
  private readonly clock: Clock;

  private readonly onDeadLetter:
    | ((queue: string, seq: number, deliveries: number) => void)
    | undefined;

  constructor(
    options: {
      store?: LmdbQueueStore;
      /** Time for ack deadlines and delays; the system clock by default. */
      clock?: Clock;
      /** Told about each message moved to a dead-letter queue, e.g. to log it. */
      onDeadLetter?: (queue: string, seq: number, deliveries: number) => void;
    } = {},
  ) {
    this.store = options.store;
    this.clock = options.clock ?? systemClock;
    this.onDeadLetter = options.onDeadLetter;
    for (const r of this.store?.load() ?? []) {
      const queue = new WorkQueue(r.name, r.settings, {
        now: () => this.clock.now(),
        epoch: this.store!.epoch,
        journal: this.store,
        ...(this.onDeadLetter ? { onDeadLetter: this.onDeadLetter } : {}),
        recovered: { messages: r.messages, counters: r.counters },
      });
      this.held.set(r.name, { queue, timer: undefined, wakeAt: undefined, onDelete: new Set() });
    }
  }

  /** Creates a queue; false when an identical one exists, `already_exists` when it differs. */
  async create(name: string, settings: QueueSettings): Promise<boolean> {
    checkQueueName(name);
    const existing = this.held.get(name);
    if (existing) {
      const same = (Object.keys(settings) as (keyof QueueSettings)[]).every(
        (k) => existing.queue.settings[k] === settings[k],
      );
      if (same) return false;
      throw new BrokerError(
        "already_exists",
        `queue ${name} exists with other settings (${JSON.stringify(existing.queue.settings)}); delete it first to change them`,
      );
    }
    if (settings.durable && !this.store) {
      throw new BrokerError(
        "failed_precondition",
        "this broker has no --data-dir, so it cannot hold durable queues; create a non-durable one or restart it with a data directory",
      );
    }
    const durable = settings.durable ? this.store : undefined;
    const queue = new WorkQueue(name, settings, {
      now: () => this.clock.now(),
      epoch: this.store?.epoch ?? 0,
      ...(durable ? { journal: durable } : {}),
      ...(this.onDeadLetter ? { onDeadLetter: this.onDeadLetter } : {}),
    });
    this.held.set(name, { queue, timer: undefined, wakeAt: undefined, onDelete: new Set() });
    if (durable) {
      durable.saveQueue(name, settings);
      await durable.flushed();
    }
    return true;
  }

  async delete(name: string): Promise<void> {
    const held = this.get(name);
    this.held.delete(name);
    if (held.timer !== undefined) this.clock.clearTimeout(held.timer);
    held.queue.close();
    for (const end of held.onDelete) end();
    if (held.queue.settings.durable && this.store) {
      this.store.deleteQueue(name);
      await this.store.flushed();
    }
  }

  names(): string[] {
    return [...this.held.keys()].sort();
  }

  settings(name: string): QueueSettings {
    return this.get(name).queue.settings;
  }

  /** Stores messages; resolves once they are durable (for a durable queue). */
  async enqueue(name: string, items: readonly QueueItem[]): Promise<number[]> {
    const held = this.get(name);
    const durable = held.queue.settings.durable && this.store !== undefined;
    const seqs = held.queue.enqueue(items, { held: durable });
    if (durable) {
      await this.store!.flushed();
      held.queue.release(seqs);
    }
    this.schedule(held);
    return seqs;
  }

  /**
   * Attaches a consumer. `onDelete` runs if the queue is deleted while attached. Returns the
   * function that detaches it (its unacknowledged messages are requeued).
   */
  attach(name: string, sink: ConsumerSink, onDelete: () => void): () => void {
    const held = this.get(name);
    const id = held.queue.attach(sink);
    held.onDelete.add(onDelete);
    this.schedule(held);
    return () => {
      held.onDelete.delete(onDelete);
      held.queue.detach(id);
      this.schedule(held);
    };
  }

  async ack(name: string, deliveryIds: readonly number[]): Promise<void> {
    const held = this.get(name);
    held.queue.ack(deliveryIds);
    this.schedule(held);
    await this.flushed(held);
  }

  async nack(name: string, deliveryIds: readonly number[], delayMs: number): Promise<number> {
    const held = this.get(name);
    const dead = held.queue.nack(deliveryIds, delayMs);
    this.schedule(held);
    await this.flushed(held);
    return dead;
  }

  async purge(name: string): Promise<number> {
    const held = this.get(name);
    const purged = held.queue.purge();
    await this.flushed(held);
    return purged;
  }

  async redrive(name: string): Promise<number> {
    const held = this.get(name);
    const moved = held.queue.redrive();
    this.schedule(held);
    await this.flushed(held);
    return moved;
  }

  stats(name: string): QueueStats {
    return this.get(name).queue.stats();
  }

  /** Stops every timer; the store stays open (its owner closes it). */
  close(): void {
    for (const held of this.held.values()) {
      if (held.timer !== undefined) this.clock.clearTimeout(held.timer);
      held.timer = undefined;
    }
  }

  private get(name: string): Held {
    const held = this.held.get(name);
    if (!held) {
      checkQueueName(name);
      throw new BrokerError(
        "not_found",
        `queue ${name} does not exist; create it with BrokerAdminService/CreateQueue`,
      );
    }
    return held;
  }

  private async flushed(held: Held): Promise<void> {
    if (held.queue.settings.durable && this.store) await this.store.flushed();
  }

  /** Keeps one timer per queue, set for the earliest deadline or delayed message. */
  private schedule(held: Held): void {
    const wakeAt = held.queue.nextWakeAt();
    if (wakeAt === held.wakeAt && (held.timer !== undefined || wakeAt === undefined)) return;
    if (held.timer !== undefined) this.clock.clearTimeout(held.timer);
    held.timer = undefined;
    held.wakeAt = wakeAt;
    if (wakeAt === undefined) return;
    held.timer = this.clock.setTimeout(
      () => {
        held.timer = undefined;
        held.wakeAt = undefined;
        held.queue.tick();
        this.schedule(held);
      },
      Math.max(0, wakeAt - this.clock.now()),
    );
  }
}
