import { open, type RootDatabase } from "lmdb";
import type { QueueCounters, QueueJournal, QueueSettings, StoredMessage } from "./work-queue.ts";

/** A durable queue as found on disk at start-up. */
export interface RecoveredQueue {
  name: string;
  settings: QueueSettings;
  messages: StoredMessage[];
  counters: QueueCounters;
}

interface StoredValue {
  p: Uint8Array;
  h: { [name: string]: string };
  d: boolean;
}

const MAX_SEQ = Number.MAX_SAFE_INTEGER;

/**
 * Durable queue storage in LMDB (lmdb-js). Writes are queued synchronously in call order and
 * lmdb-js commits everything queued in one event turn as one transaction, so after a crash
 * the store holds a prefix of the changes, never a torn one. Callers `await flushed()`
 * before acknowledging: with `overlappingSync` (the default on Linux) a put's own promise
 * resolves at commit, before the fsync, while `flushed` resolves after it.
 *
 * Keys: ["q", name] settings, ["c", name] counters, ["m", name, seq] messages, ["epoch"].
 */
export class LmdbQueueStore implements QueueJournal {
  private readonly db: RootDatabase;
  /** How many times this store was opened before, so delivery ids never repeat. */
  readonly epoch: number;

  private constructor(db: RootDatabase, epoch: number) {
    this.db = db;
    this.epoch = epoch;
  }

  /** Opens (or creates) the store in `dir` and bumps its epoch durably. */
  static async open(dir: string): Promise<LmdbQueueStore> {
    // noSync stays false (the default): every commit is flushed to disk.
    const db = open({ path: dir, compression: false, noSync: false });
    const epoch = ((db.get(["epoch"]) as number | undefined) ?? -1) + 1;
    db.put(["epoch"], epoch);
    await db.flushed;
    return new LmdbQueueStore(db, epoch);
  }

  put(queue: string, message: StoredMessage): void {
    const value: StoredValue = { p: message.payload, h: message.headers, d: message.dead };
    void this.db.put(["m", queue, message.seq], value);
  }

  remove(queue: string, seq: number): void {
    void this.db.remove(["m", queue, seq]);
  }

  counters(queue: string, counters: QueueCounters): void {
    void this.db.put(["c", queue], { ...counters });
  }

  saveQueue(name: string, settings: QueueSettings): void {
    void this.db.put(["q", name], settings);
  }

  /** Removes a queue with its messages and counters. */
  deleteQueue(name: string): void {
    for (const key of this.db.getKeys({ start: ["m", name, 0], end: ["m", name, MAX_SEQ] })) {
      void this.db.remove(key);
    }
    void this.db.remove(["c", name]);
    void this.db.remove(["q", name]);
  }

  /** Resolves once every change queued so far is committed and fsync'd. */
  async flushed(): Promise<void> {
    await this.db.flushed;
  }

  /** Every durable queue with its messages, in sequence order. */
  load(): RecoveredQueue[] {
    const queues: RecoveredQueue[] = [];
    for (const { key, value } of this.db.getRange({ start: ["q"], end: ["q", "\uffff"] })) {
      const name = (key as [string, string])[1];
      const messages: StoredMessage[] = [];
      for (const m of this.db.getRange({ start: ["m", name, 0], end: ["m", name, MAX_SEQ] })) {
        const v = m.value as StoredValue;
        messages.push({
          seq: (m.key as [string, string, number])[2],
          payload: v.p,
          headers: v.h,
          dead: v.d,
        });
      }
      const counters = (this.db.get(["c", name]) as QueueCounters | undefined) ?? {
        enqueued: messages.length,
        acked: 0,
        redelivered: 0,
        deadLettered: 0,
        nextSeq: (messages[messages.length - 1]?.seq ?? 0) + 1,
      };
      queues.push({ name, settings: value as QueueSettings, messages, counters });
    }
    return queues;
  }

  async close(): Promise<void> {
    await this.db.close();
  }
}
