import { BufferBudget, type OverflowEvent, type SubscriptionOptions } from "@quartet/broker";
import type { Logger } from "@quartet/server";
import type { BrokerLimits } from "./limits.ts";

/** What a subscription needs to count its bytes, and the call that ends that. */
export interface SubscriptionBuffer {
  options: Required<Pick<SubscriptionOptions, "byteLimit" | "budgets" | "onOverflow">>;
  /** Call once when the subscription has ended: logs drops not logged yet, forgets the client. */
  end(): void;
}

/**
 * The byte limits of subscription buffers: one per subscription, one shared by each client
 * id's subscriptions, one for the whole broker. Also logs the slow-consumer policy when it
 * acts, at most once per subscription per interval (an attack drops messages by the million;
 * its log must not grow with them).
 */
export class SubscriptionBuffers {
  readonly broker: BufferBudget;
  private readonly clients = new Map<string, { budget: BufferBudget; subscriptions: number }>();
  private readonly limits: BrokerLimits;
  private readonly logger: Logger;
  private readonly now: () => number;

  constructor(limits: BrokerLimits, logger: Logger, now: () => number = () => performance.now()) {
    this.limits = limits;
    this.logger = logger;
    this.now = now;
    this.broker = new BufferBudget(
      limits.maxBufferBytes,
      `the broker's limit of ${limits.maxBufferBytes} bytes for all subscription buffers (--max-buffer-bytes)`,
    );
  }

  /** Client ids with a budget now (one per client with a subscription). */
  get clientCount(): number {
    return this.clients.size;
  }

  open(client: string, fields: Record<string, unknown>): SubscriptionBuffer {
    let entry = this.clients.get(client);
    if (!entry) {
      const limit = this.limits.maxClientBufferBytes;
      entry = {
        budget: new BufferBudget(
          limit,
          `the limit of ${limit} bytes for all subscriptions of client ${JSON.stringify(client)} (--max-client-buffer-bytes)`,
        ),
        subscriptions: 0,
      };
      this.clients.set(client, entry);
    }
    entry.subscriptions++;
    const held = entry;
    const log = new SlowConsumerLog(
      this.logger,
      { client, ...fields },
      this.limits.slowConsumerLogIntervalMs,
      this.now,
    );
    const limit = this.limits.maxSubscriptionBufferBytes;
    let ended = false;
    return {
      options: {
        byteLimit: {
          bytes: limit,
          description: `the broker's limit of ${limit} bytes per subscription (--max-subscription-buffer-bytes)`,
        },
        budgets: [held.budget, this.broker],
        onOverflow: (event) => log.record(event),
      },
      end: () => {
        if (ended) return;
        ended = true;
        log.flush();
        if (--held.subscriptions === 0 && this.clients.get(client) === held) {
          this.clients.delete(client);
        }
      },
    };
  }
}

/** One subscription's slow-consumer log: the first drop at once, then one line per interval. */
class SlowConsumerLog {
  private lastAt: number | undefined;
  private unlogged = 0;
  private total = 0;
  private lastLimit = "";
  private readonly logger: Logger;
  private readonly fields: Record<string, unknown>;
  private readonly intervalMs: number;
  private readonly now: () => number;

  constructor(
    logger: Logger,
    fields: Record<string, unknown>,
    intervalMs: number,
    now: () => number,
  ) {
    this.logger = logger;
    this.fields = fields;
    this.intervalMs = intervalMs;
    this.now = now;
  }

  record(event: OverflowEvent): void {
    if (event.error) {
      // Once per subscription: it ends here.
      this.flush();
      this.logger.warn(
        { ...this.fields, limit: event.limit, policy: "disconnect" },
        event.error.message,
      );
      return;
    }
    this.unlogged += event.dropped;
    this.total += event.dropped;
    this.lastLimit = event.limit;
    const now = this.now();
    if (this.lastAt === undefined || now - this.lastAt >= this.intervalMs) {
      this.lastAt = now;
      this.flush();
    }
  }

  /** Logs the drops not logged yet, if any. */
  flush(): void {
    if (this.unlogged === 0) return;
    this.logger.warn(
      {
        ...this.fields,
        limit: this.lastLimit,
        policy: "drop-oldest",
        dropped: this.unlogged,
        droppedTotal: this.total,
      },
      `slow consumer: dropped ${this.unlogged} oldest messages, ${this.lastLimit} reached`,
    );
    this.unlogged = 0;
  }
}
