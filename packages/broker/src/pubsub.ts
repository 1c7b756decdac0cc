import type { Random } from "@quartet/determinism";
import { messageBytes } from "./buffer-budget.ts";
import { BrokerError } from "./errors.ts";
import { parseSubject } from "./subject.ts";
import { Sublist } from "./sublist.ts";
import { type BrokerMessage, Subscription, type SubscriptionOptions } from "./subscription.ts";

/** Prefix of the reply inboxes `request()` creates; publishers may not use it for other things. */
export const INBOX_PREFIX = "_INBOX.";

/**
 * Subject-based publish/subscribe: each message goes to every matching plain subscription
 * and to one member of each matching queue group (round robin, skipping full members), and
 * request-reply on top of it. Single-threaded and synchronous, so the order in which one
 * publisher's messages reach a subscriber is the publish order.
 */
export class PubSub<M extends BrokerMessage = BrokerMessage> {
  private readonly sublist = new Sublist<Subscription<M>>();
  private readonly inboxes = new Map<string, (reply: M) => void>();
  /** Per queue-group name: its members (across filters) and whose turn is next. */
  private readonly groups = new Map<string, { members: number; turn: number }>();
  private nextId = 1;
  private nextInbox = 1;
  private readonly inboxBase: string;

  /** `random` names this broker's inboxes (`_INBOX.<random>.<n>`); seed it for replays. */
  constructor(options: { random?: Random } = {}) {
    const random = options.random ?? Math.random;
    this.inboxBase = `${INBOX_PREFIX}${Math.floor(random() * 2 ** 48).toString(36)}.`;
  }

  /** Subscriptions now active (not counting request inboxes). */
  get subscriptions(): number {
    return this.sublist.size;
  }

  /** Queue groups with at least one member. */
  get queueGroups(): number {
    return this.groups.size;
  }

  /** Adds a subscription; throws `invalid_argument` for a bad filter. */
  subscribe(options: SubscriptionOptions): Subscription<M> {
    const filter = parseSubject(options.subject, { wildcards: true });
    const sub = new Subscription<M>(this.nextId++, filter, options, (s) => this.unsubscribed(s));
    this.sublist.insert(sub);
    if (sub.queueGroup !== "") {
      const group = this.groups.get(sub.queueGroup);
      if (group) group.members++;
      else this.groups.set(sub.queueGroup, { members: 1, turn: 0 });
    }
    return sub;
  }

  /** A group is forgotten with its last member: clients may rotate group names freely. */
  private unsubscribed(sub: Subscription<M>): void {
    if (!this.sublist.remove(sub) || sub.queueGroup === "") return;
    const group = this.groups.get(sub.queueGroup);
    if (group && --group.members === 0) this.groups.delete(sub.queueGroup);
  }

  /**
   * Routes a message whose subject was already validated (see `parseSubject`). Returns how
   * many subscriptions (a queue group counting once) it was handed to.
   */
  publish(message: M, tokens: readonly string[]): number {
    const inbox = this.inboxes.get(message.subject);
    let delivered = 0;
    if (inbox) {
      inbox(message);
      delivered++;
    }
    const { plain, groups } = this.sublist.match(message.subject, tokens);
    if (plain.length === 0 && groups.size === 0) return delivered;
    const bytes = messageBytes(message);
    for (const sub of plain) sub.push(message, bytes);
    delivered += plain.length;
    for (const [name, members] of groups) {
      // Every matched group has a member, so it is in `groups`.
      const group = this.groups.get(name)!;
      const start = group.turn++;
      // Fair share: the next member in turn, unless its buffer is full and another's is not.
      let chosen = members[start % members.length]!;
      for (let i = 0; i < members.length && chosen.full; i++) {
        chosen = members[(start + i) % members.length]!;
      }
      chosen.push(message, bytes);
      delivered++;
    }
    return delivered;
  }

  /**
   * Publishes `message` with a fresh reply inbox and resolves with the first reply. Rejects
   * with `unavailable` when no subscriber matches, and with `deadline_exceeded` when
   * `signal` aborts first.
   */
  request(message: Omit<M, "replyTo">, tokens: readonly string[], signal: AbortSignal): Promise<M> {
    const inbox = `${this.inboxBase}${this.nextInbox++}`;
    return new Promise<M>((resolve, reject) => {
      const finish = () => {
        this.inboxes.delete(inbox);
        signal.removeEventListener("abort", onAbort);
      };
      const onAbort = () => {
        finish();
        reject(
          new BrokerError(
            "deadline_exceeded",
            `no reply on ${JSON.stringify(message.subject)} before the deadline`,
          ),
        );
      };
      if (signal.aborted) return onAbort();
      signal.addEventListener("abort", onAbort, { once: true });
      this.inboxes.set(inbox, (reply) => {
        finish();
        resolve(reply);
      });
      const delivered = this.publish({ ...message, replyTo: inbox } as M, tokens);
      if (delivered === 0) {
        finish();
        reject(
          new BrokerError(
            "unavailable",
            `no responders: nothing subscribes to ${JSON.stringify(message.subject)}`,
          ),
        );
      }
    });
  }
}
