import { randomBytes } from "node:crypto";
import { Code, ConnectError } from "@connectrpc/connect";
import { INBOX_PREFIX } from "@quartet/broker";

/** How long an unanswered request's aliases are kept: the longest request timeout. */
const ALIAS_TTL_MS = 300_000;

interface Request {
  inbox: string;
  aliases: string[];
  expires: number;
}

/**
 * Reply subjects as responders see them. The broker's own inboxes never leave it: each
 * delivery of a request carries a fresh random alias (`_INBOX.<128 bits>`), bound to the
 * identity it was delivered to. A reply to an alias is accepted once, from that identity;
 * the first accepted reply retires every alias of the request. So a client can neither guess
 * an inbox nor answer a request it was not delivered.
 */
export class ReplyInboxes {
  private readonly byAlias = new Map<string, { request: Request; receiver: string }>();
  private readonly byInbox = new Map<string, Request>();

  private readonly now: () => number;

  constructor(now: () => number = Date.now) {
    this.now = now;
  }

  /** The reply subject to show `receiver` for a request whose inbox is `inbox`. */
  alias(inbox: string, receiver: string): string {
    this.expire();
    let request = this.byInbox.get(inbox);
    if (!request) {
      request = { inbox, aliases: [], expires: this.now() + ALIAS_TTL_MS };
      this.byInbox.set(inbox, request);
    }
    const alias = `${INBOX_PREFIX}${randomBytes(16).toString("hex")}`;
    request.aliases.push(alias);
    this.byAlias.set(alias, { request, receiver });
    return alias;
  }

  /** Throws PermissionDenied unless `sender` may reply to `subject` now. */
  check(field: string, subject: string, sender: string): void {
    const found = this.byAlias.get(subject);
    if (!found || found.receiver !== sender) this.refuse(field, subject);
  }

  refuse(field: string, subject: string): never {
    throw new ConnectError(
      `${field}: ${JSON.stringify(subject.slice(0, 80))} is a reply inbox you were not delivered a request for, or its request was already answered; reply only once, to the reply_to of a request you received`,
      Code.PermissionDenied,
    );
  }

  /**
   * The inbox a checked reply from `sender` to `subject` goes to, retiring the request's
   * aliases; undefined when another alias of the request was answered since (one batch
   * answering a request twice: the first reply wins).
   */
  take(subject: string, sender: string): string | undefined {
    const found = this.byAlias.get(subject);
    if (!found || found.receiver !== sender) return undefined;
    this.retire(found.request);
    return found.request.inbox;
  }

  private retire(request: Request): void {
    for (const a of request.aliases) this.byAlias.delete(a);
    this.byInbox.delete(request.inbox);
  }

  /** Requests are kept in creation order, so expired ones are at the front. */
  private expire(): void {
    const now = this.now();
    for (const request of this.byInbox.values()) {
      if (request.expires > now) return;
      this.retire(request);
    }
  }
}

export const isInbox = (subject: string): boolean => subject.startsWith(INBOX_PREFIX);
