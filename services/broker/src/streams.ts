import { Code } from "@connectrpc/connect";

/** Reads `items` until `signal` aborts (then stops without waiting for the next item). */
export async function* untilAborted<T>(
  items: AsyncIterable<T>,
  signal: AbortSignal,
): AsyncGenerator<T> {
  const iterator = items[Symbol.asyncIterator]();
  const aborted = new Promise<IteratorResult<T>>((resolve) => {
    if (signal.aborted) resolve({ done: true, value: undefined });
    signal.addEventListener("abort", () => resolve({ done: true, value: undefined }), {
      once: true,
    });
  });
  for (;;) {
    const next = await Promise.race([iterator.next(), aborted]);
    if (next.done) return;
    yield next.value;
  }
}

/** "DeadlineExceeded" -> "deadline_exceeded", as Connect names codes on the wire. */
export function codeName(code: Code): string {
  return Code[code].replace(/[A-Z]/g, (c, at: number) => (at ? "_" : "") + c.toLowerCase());
}

/**
 * Results of concurrent work, handed to a stream in batches: whatever finished since the
 * last batch goes out together. Ends when closed and every tracked promise has settled.
 */
export class Outbox<T> {
  private ready: T[] = [];
  private pending = 0;
  private closed = false;
  private failure: { error: unknown } | undefined;
  private wake: (() => void) | undefined;

  /** Tracked work not yet settled. */
  get outstanding(): number {
    return this.pending;
  }

  /** Adds a result that is already known. */
  push(value: T): void {
    this.ready.push(value);
    this.notify();
  }

  track(work: Promise<T>): void {
    this.pending++;
    void work.then((value) => {
      this.pending--;
      this.ready.push(value);
      this.notify();
    });
  }

  close(): void {
    this.closed = true;
    this.notify();
  }

  fail(error: unknown): void {
    this.failure = { error };
    this.notify();
  }

  async *batches(): AsyncGenerator<T[]> {
    for (;;) {
      if (this.failure) throw this.failure.error;
      if (this.ready.length > 0) {
        const batch = this.ready;
        this.ready = [];
        yield batch;
        continue;
      }
      if (this.closed && this.pending === 0) return;
      await new Promise<void>((resolve) => (this.wake = resolve));
    }
  }

  private notify(): void {
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }
}

/** An async iterable fed by push(); the request side of a client or bidi stream. */
export class Channel<T> implements AsyncIterable<T> {
  private items: { item: T; taken: () => void }[] = [];
  private closed = false;
  private wake: (() => void) | undefined;

  /** Queues an item; resolves once the stream has taken it (for backpressure). */
  push(item: T): Promise<void> {
    if (this.closed) return Promise.resolve();
    return new Promise<void>((taken) => {
      this.items.push({ item, taken });
      const wake = this.wake;
      this.wake = undefined;
      wake?.();
    });
  }

  /** Items queued and not yet taken. */
  get backlog(): number {
    return this.items.length;
  }

  close(): void {
    this.closed = true;
    for (const { taken } of this.items.splice(0)) taken();
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<T> {
    for (;;) {
      const next = this.items.shift();
      if (next) {
        next.taken();
        yield next.item;
        continue;
      }
      if (this.closed) return;
      await new Promise<void>((resolve) => (this.wake = resolve));
    }
  }
}
