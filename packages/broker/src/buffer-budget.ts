import type { BrokerMessage } from "./subscription.ts";

/** Bytes counted per buffered message besides its payload, headers and subjects. */
export const MESSAGE_OVERHEAD_BYTES = 64;

/** What a buffered message costs: payload, subjects, header names and values, and overhead. */
export function messageBytes(message: BrokerMessage): number {
  let bytes =
    MESSAGE_OVERHEAD_BYTES +
    message.payload.byteLength +
    message.subject.length +
    message.replyTo.length;
  const headers = message.headers;
  for (const name in headers) bytes += name.length + headers[name]!.length;
  return bytes;
}

/** A buffer that can give bytes back to a budget: a subscription. */
export interface BudgetMember {
  /** Bytes it holds now. */
  readonly bytes: number;
  /** Gives back at least `bytes` (fewer if it holds fewer), as its overflow policy says. */
  shed(bytes: number, budget: BufferBudget): void;
}

/**
 * Bytes shared by many subscription buffers: one client's, or the whole broker's. When a
 * message takes it over its limit, the largest buffers give bytes back until it is under
 * 15/16 of the limit: the slowest readers pay, not whoever got the last message, and the
 * scan for them runs once per 1/16 of the limit rather than once per message.
 */
export class BufferBudget {
  /** Bytes held now by its members. */
  used = 0;
  readonly limit: number;
  /** Names the limit in errors and logs, e.g. "the broker's --max-buffer-bytes (268435456)". */
  readonly description: string;
  private readonly members = new Set<BudgetMember>();

  constructor(limit: number, description: string) {
    this.limit = limit;
    this.description = description;
  }

  /** Buffers counted against it now. */
  get size(): number {
    return this.members.size;
  }

  join(member: BudgetMember): void {
    this.members.add(member);
  }

  leave(member: BudgetMember): void {
    this.members.delete(member);
  }

  charge(bytes: number): void {
    this.used += bytes;
    if (this.used > this.limit) this.shed();
  }

  release(bytes: number): void {
    this.used -= bytes;
  }

  private shed(): void {
    const target = this.limit - Math.floor(this.limit / 16);
    const largestFirst = [...this.members].sort((a, b) => b.bytes - a.bytes);
    for (const member of largestFirst) {
      if (this.used <= target) return;
      member.shed(this.used - target, this);
    }
  }
}
