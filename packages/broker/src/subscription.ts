import { type BudgetMember, type BufferBudget, messageBytes } from "./buffer-budget.ts";
import { BrokerError } from "./errors.ts";
import type { SublistEntry } from "./sublist.ts";

/** What happens when a subscriber's buffer is full. */
export type OverflowPolicy = "drop-oldest" | "disconnect";

/** A message as the broker routes it. */
export interface BrokerMessage {
  subject: string;
  payload: Uint8Array;
  headers: { [name: string]: string };
  /** Subject to reply to, or "". */
  replyTo: string;
}

/** The slow-consumer policy acted on one subscription. */
export interface OverflowEvent {
  /** The limit that was reached, in words (e.g. "its buffer_size of 8192 messages"). */
  limit: string;
  /** Messages dropped by this action (with "drop-oldest"). */
  dropped: number;
  /** The subscription was closed (with "disconnect"); `error` is what its reader gets. */
  error?: BrokerError;
}

export interface SubscriptionOptions {
  /** Filter: a subject with optional `*` and final `>` wildcards. */
  subject: string;
  /** Queue group name, or "" for a plain subscription. */
  queueGroup?: string;
  /** Messages held while the subscriber is slow. */
  bufferSize: number;
  overflow: OverflowPolicy;
  /** Bytes held while the subscriber is slow (see `messageBytes`); unbounded by default. */
  byteLimit?: { bytes: number; description: string };
  /** Budgets shared with other buffers (its client's, the broker's) it also counts against. */
  budgets?: readonly BufferBudget[];
  /** Told every time the slow-consumer policy acts (to log it; it may be called often). */
  onOverflow?: (event: OverflowEvent) => void;
}

/**
 * One subscriber: a FIFO buffer bounded in messages and bytes, filled by publishes and
 * drained by its reader. When a limit is reached, "drop-oldest" drops the oldest messages and
 * counts them; "disconnect" closes the subscription with a `resource_exhausted` error naming
 * the limit. A shared budget that overflows takes bytes back from its largest buffers first.
 */
export class Subscription<M extends BrokerMessage = BrokerMessage>
  implements SublistEntry, BudgetMember
{
  readonly id: number;
  readonly subject: string;
  readonly filter: readonly string[];
  readonly queueGroup: string;
  readonly bufferSize: number;
  readonly overflow: OverflowPolicy;
  /** Messages dropped because a limit was reached. */
  dropped = 0;
  /** Bytes buffered now (see `messageBytes`). */
  bytes = 0;
  /**
   * Bytes of the last batch taken: the reader may still be writing them out, so they stay
   * charged to the shared budgets until it takes the next batch or closes.
   */
  handedOut = 0;
  /** Set when the subscription ended; the reason when it was forced. */
  closed: { error?: BrokerError } | undefined;

  private buffer: (M | undefined)[];
  /** Each buffered message's bytes, at the same index as in `buffer`. */
  private sizes: number[];
  private head = 0;
  private length = 0;
  private wake: (() => void) | undefined;
  private readonly onClose: (sub: Subscription<M>) => void;
  private readonly byteLimit: { bytes: number; description: string } | undefined;
  private readonly budgets: readonly BufferBudget[];
  private readonly onOverflow: ((event: OverflowEvent) => void) | undefined;

  constructor(
    id: number,
    filter: readonly string[],
    options: SubscriptionOptions,
    onClose: (sub: Subscription<M>) => void,
  ) {
    this.id = id;
    this.subject = options.subject;
    this.filter = filter;
    this.queueGroup = options.queueGroup ?? "";
    this.bufferSize = options.bufferSize;
    this.overflow = options.overflow;
    this.byteLimit = options.byteLimit;
    this.budgets = options.budgets ?? [];
    this.onOverflow = options.onOverflow;
    const capacity = Math.min(options.bufferSize, 1024);
    this.buffer = new Array(capacity);
    this.sizes = new Array(capacity);
    this.onClose = onClose;
    for (const budget of this.budgets) budget.join(this);
  }

  /** Messages waiting to be read. */
  get pending(): number {
    return this.length;
  }

  get full(): boolean {
    return (
      this.length >= this.bufferSize ||
      (this.byteLimit !== undefined && this.bytes >= this.byteLimit.bytes)
    );
  }

  /** Called by the broker for each matching message; `bytes` is its `messageBytes`. */
  push(message: M, bytes: number = messageBytes(message)): void {
    if (this.closed) return;
    if (this.length >= this.bufferSize) {
      const limit = `its buffer_size of ${this.bufferSize} messages`;
      if (this.overflow === "disconnect") {
        this.disconnect(limit);
        return;
      }
      this.dropOldest(1);
      this.dropped++;
      this.onOverflow?.({ limit, dropped: 1 });
    }
    const byteLimit = this.byteLimit;
    if (byteLimit && this.bytes + bytes > byteLimit.bytes) {
      if (this.overflow === "disconnect") {
        this.disconnect(byteLimit.description);
        return;
      }
      if (bytes > byteLimit.bytes) {
        // Larger than the whole buffer may be: this message is the one dropped.
        this.dropped++;
        this.onOverflow?.({ limit: byteLimit.description, dropped: 1 });
        return;
      }
      let n = 0;
      while (this.bytes + bytes > byteLimit.bytes) n += this.dropOldest(1);
      this.dropped += n;
      this.onOverflow?.({ limit: byteLimit.description, dropped: n });
    }
    if (this.length === this.buffer.length) this.grow();
    const at = (this.head + this.length) % this.buffer.length;
    this.buffer[at] = message;
    this.sizes[at] = bytes;
    this.length++;
    this.bytes += bytes;
    // A shared budget pushed over its limit may take bytes back from this very buffer.
    for (const budget of this.budgets) budget.charge(bytes);
    this.notify();
  }

  /** Gives back at least `bytes` to an overflowing shared budget (BudgetMember). */
  shed(bytes: number, budget: BufferBudget): void {
    if (this.closed || this.length === 0) return;
    if (this.overflow === "disconnect") {
      this.disconnect(budget.description);
      return;
    }
    let freed = 0;
    let n = 0;
    while (freed < bytes && this.length > 0) {
      freed += this.sizes[this.head]!;
      n += this.dropOldest(1);
    }
    this.dropped += n;
    this.onOverflow?.({ limit: budget.description, dropped: n });
  }

  /**
   * Takes up to `max` buffered messages, oldest first, without waiting; stops before
   * `maxBytes` (but always takes one message when there is one).
   */
  take(max: number, maxBytes = Number.POSITIVE_INFINITY): M[] {
    const out: M[] = [];
    const cap = this.buffer.length;
    let taken = 0;
    while (out.length < max && this.length > 0) {
      const size = this.sizes[this.head]!;
      if (out.length > 0 && taken + size > maxBytes) break;
      taken += size;
      out.push(this.buffer[this.head]!);
      this.buffer[this.head] = undefined;
      this.head = (this.head + 1) % cap;
      this.length--;
    }
    this.bytes -= taken;
    this.releaseBudgets(this.handedOut);
    this.handedOut = taken;
    return out;
  }

  /**
   * Waits until a message is buffered or the subscription closes, then takes up to `max`
   * messages and (past the first) `maxBytes`. Returns undefined when the subscription closed
   * normally (or `signal` aborted); throws the error a forced close carried (slow consumer).
   */
  async next(
    max: number,
    signal?: AbortSignal,
    maxBytes = Number.POSITIVE_INFINITY,
  ): Promise<M[] | undefined> {
    while (this.length === 0) {
      if (this.closed) {
        if (this.closed.error) throw this.closed.error;
        return undefined;
      }
      if (signal?.aborted) return undefined;
      await new Promise<void>((resolve) => {
        const done = () => {
          signal?.removeEventListener("abort", done);
          this.wake = undefined;
          resolve();
        };
        this.wake = done;
        signal?.addEventListener("abort", done, { once: true });
      });
    }
    return this.take(max, maxBytes);
  }

  /** Ends the subscription and removes it from the broker. */
  close(error?: BrokerError): void {
    if (this.closed) return;
    this.closed = error ? { error } : {};
    if (error) {
      // A disconnected slow consumer loses its buffer: the reader gets the error at once.
      this.buffer = [];
      this.sizes = [];
      this.head = 0;
      this.length = 0;
    }
    // Whatever is still buffered after a normal close is the reader's, not the broker's.
    this.release(this.bytes);
    this.releaseBudgets(this.handedOut);
    this.handedOut = 0;
    for (const budget of this.budgets) budget.leave(this);
    this.onClose(this);
    this.notify();
  }

  private disconnect(limit: string): void {
    const subject = JSON.stringify(this.subject);
    const what =
      this.length >= this.bufferSize
        ? `the buffer of ${this.bufferSize} messages for ${subject} is full`
        : `the buffer for ${subject} (${this.length} messages, ${this.bytes} bytes) reached ${limit}`;
    const error = new BrokerError(
      "resource_exhausted",
      `slow consumer: ${what}; read faster, raise buffer_size or use OVERFLOW_DROP_OLDEST`,
    );
    this.close(error);
    this.onOverflow?.({ limit, dropped: 0, error });
  }

  /** Drops up to `n` of the oldest messages; returns how many. Does not count them. */
  private dropOldest(n: number): number {
    let freed = 0;
    let dropped = 0;
    for (; dropped < n && this.length > 0; dropped++) {
      freed += this.sizes[this.head]!;
      this.buffer[this.head] = undefined;
      this.head = (this.head + 1) % this.buffer.length;
      this.length--;
    }
    this.release(freed);
    return dropped;
  }

  private release(bytes: number): void {
    this.bytes -= bytes;
    this.releaseBudgets(bytes);
  }

  private releaseBudgets(bytes: number): void {
    if (bytes === 0) return;
    for (const budget of this.budgets) budget.release(bytes);
  }

  private notify(): void {
    const wake = this.wake;
    if (wake) wake();
  }

  private grow(): void {
    const cap = this.buffer.length;
    const size = Math.min(this.bufferSize, cap * 2);
    const bigger = new Array<M | undefined>(size);
    const sizes = new Array<number>(size);
    for (let i = 0; i < this.length; i++) {
      bigger[i] = this.buffer[(this.head + i) % cap];
      sizes[i] = this.sizes[(this.head + i) % cap]!;
    }
    this.buffer = bigger;
    this.sizes = sizes;
    this.head = 0;
  }
}
