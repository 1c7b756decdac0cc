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

export interface SubscriptionOptions {
  /** Filter: a subject with optional `*` and final `>` wildcards. */
  subject: string;
  /** Queue group name, or "" for a plain subscription. */
  queueGroup?: string;
  /** Messages held while the subscriber is slow. */
  bufferSize: number;
  overflow: OverflowPolicy;
}

/**
 * One subscriber: a bounded FIFO buffer filled by publishes and drained by its reader.
 * With "drop-oldest" a full buffer drops its oldest message and counts it; with
 * "disconnect" it closes the subscription with a `resource_exhausted` error.
 */
export class Subscription<M extends BrokerMessage = BrokerMessage> implements SublistEntry {
  readonly id: number;
  readonly subject: string;
  readonly filter: readonly string[];
  readonly queueGroup: string;
  readonly bufferSize: number;
  readonly overflow: OverflowPolicy;
  /** Messages dropped because the buffer was full. */
  dropped = 0;
  /** Set when the subscription ended; the reason when it was forced. */
  closed: { error?: BrokerError } | undefined;

  private buffer: (M | undefined)[];
  private head = 0;
  private length = 0;
  private wake: (() => void) | undefined;
  private readonly onClose: (sub: Subscription<M>) => void;

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
    this.buffer = new Array(Math.min(options.bufferSize, 1024));
    this.onClose = onClose;
  }

  /** Messages waiting to be read. */
  get pending(): number {
    return this.length;
  }

  get full(): boolean {
    return this.length >= this.bufferSize;
  }

  /** Called by the broker for each matching message. */
  push(message: M): void {
    if (this.closed) return;
    if (this.length >= this.bufferSize) {
      if (this.overflow === "disconnect") {
        this.close(
          new BrokerError(
            "resource_exhausted",
            `slow consumer: the buffer of ${this.bufferSize} messages for ${JSON.stringify(this.subject)} is full; read faster, raise buffer_size or use OVERFLOW_DROP_OLDEST`,
          ),
        );
        return;
      }
      this.head = (this.head + 1) % this.buffer.length;
      this.length--;
      this.dropped++;
    }
    if (this.length === this.buffer.length) this.grow();
    this.buffer[(this.head + this.length) % this.buffer.length] = message;
    this.length++;
    this.notify();
  }

  /** Takes up to `max` buffered messages, oldest first, without waiting. */
  take(max: number): M[] {
    const n = Math.min(max, this.length);
    const out = new Array<M>(n);
    const cap = this.buffer.length;
    for (let i = 0; i < n; i++) {
      const at = (this.head + i) % cap;
      out[i] = this.buffer[at]!;
      this.buffer[at] = undefined;
    }
    this.head = (this.head + n) % cap;
    this.length -= n;
    return out;
  }

  /**
   * Waits until a message is buffered or the subscription closes, then takes up to `max`.
   * Returns undefined when the subscription closed normally (or `signal` aborted); throws
   * the error a forced close carried (e.g. slow consumer).
   */
  async next(max: number, signal?: AbortSignal): Promise<M[] | undefined> {
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
    return this.take(max);
  }

  /** Ends the subscription and removes it from the broker. */
  close(error?: BrokerError): void {
    if (this.closed) return;
    this.closed = error ? { error } : {};
    if (error) {
      // A disconnected slow consumer loses its buffer: the reader gets the error at once.
      this.buffer = [];
      this.head = 0;
      this.length = 0;
    }
    this.onClose(this);
    this.notify();
  }

  private notify(): void {
    const wake = this.wake;
    if (wake) wake();
  }

  private grow(): void {
    const bigger = new Array<M | undefined>(Math.min(this.bufferSize, this.buffer.length * 2));
    for (let i = 0; i < this.length; i++)
      bigger[i] = this.buffer[(this.head + i) % this.buffer.length];
    this.buffer = bigger;
    this.head = 0;
  }
}
