import type { Message, NodeId } from "@quartet/raft";

/**
 * Opens one long-lived stream to a peer and writes every batch the iterable yields; settles
 * when the stream ends (rejects when it breaks). The Connect client-streaming call is one.
 */
export type OpenStream = (batches: AsyncIterable<Message[]>, signal: AbortSignal) => Promise<void>;

export interface PeerSenderOptions {
  peer: NodeId;
  open: OpenStream;
  /** Told when messages to the peer were dropped or its stream broke. */
  unreachable: (peer: NodeId) => void;
  /** Messages queued for the peer before new ones are dropped. Default 8,192. */
  maxQueuedMessages?: number;
  /** Payload bytes queued for the peer before new messages are dropped. Default 64 MiB. */
  maxQueuedBytes?: number;
  /** Waits before reconnecting: attempt -> ms. Default 50 ms doubling up to 2 s. */
  backoff?: (attempt: number) => number;
}

/**
 * The outbound half of the link to one peer: a bounded queue drained into one stream, in
 * batches of whatever queued up while the previous write was in flight. A slow or dead peer
 * fills only its own queue; past the bound new messages are dropped and the core is told the
 * peer is unreachable (it stops pipelining and probes), which Raft tolerates by design. A
 * broken stream is reopened with backoff; what was queued meanwhile is sent on the new one.
 */
export class PeerSender {
  private readonly peer: NodeId;
  private readonly open: OpenStream;
  private readonly unreachable: (peer: NodeId) => void;
  private readonly maxMessages: number;
  private readonly maxBytes: number;
  private readonly backoff: (attempt: number) => number;
  private queue: Message[] = [];
  private queuedBytes = 0;
  private wake: (() => void) | undefined;
  private readonly controller = new AbortController();
  private closed = false;
  /** Counters for status and tests. */
  readonly stats = { sent: 0, dropped: 0, reconnects: 0 };

  constructor(options: PeerSenderOptions) {
    this.peer = options.peer;
    this.open = options.open;
    this.unreachable = options.unreachable;
    this.maxMessages = options.maxQueuedMessages ?? 8192;
    this.maxBytes = options.maxQueuedBytes ?? 64 * 1024 * 1024;
    this.backoff = options.backoff ?? ((n) => Math.min(2000, 50 * 2 ** Math.min(n, 6)));
    void this.loop();
  }

  send(m: Message): void {
    if (this.closed) return;
    const bytes = messageBytes(m);
    if (this.queue.length >= this.maxMessages || this.queuedBytes + bytes > this.maxBytes) {
      this.stats.dropped++;
      this.unreachable(this.peer);
      return;
    }
    this.queue.push(m);
    this.queuedBytes += bytes;
    this.wake?.();
  }

  close(): void {
    this.closed = true;
    this.controller.abort();
    this.wake?.();
  }

  private async loop(): Promise<void> {
    for (let attempt = 0; !this.closed; ) {
      let wrote = false;
      try {
        await this.open(
          this.batches(() => (wrote = true)),
          this.controller.signal,
        );
      } catch {
        // The peer is down or restarting: the core learns it, the queue waits.
      }
      if (this.closed) return;
      this.unreachable(this.peer);
      this.stats.reconnects++;
      attempt = wrote ? 0 : attempt + 1;
      await new Promise((resolve) => setTimeout(resolve, this.backoff(attempt)));
    }
  }

  private async *batches(onWrite: () => void): AsyncGenerator<Message[]> {
    while (!this.closed) {
      if (this.queue.length === 0) {
        await new Promise<void>((resolve) => {
          this.wake = resolve;
        });
        this.wake = undefined;
        continue;
      }
      const batch = this.queue;
      this.queue = [];
      this.queuedBytes = 0;
      this.stats.sent += batch.length;
      onWrite();
      yield batch;
    }
  }
}

/** Payload bytes a message holds (entries and snapshot chunks), for the queue's byte bound. */
function messageBytes(m: Message): number {
  if (m.type === "app") {
    let n = 0;
    for (const e of m.entries) n += e.data.byteLength;
    return n;
  }
  if (m.type === "snap") return m.data.byteLength;
  return 0;
}
