import { parseSubject } from "@quartet/broker";

/** Allow and deny lists of subject (or queue name) patterns; deny wins, as in NATS. */
export interface RuleSet {
  allow?: string[];
  deny?: string[];
}

/** What one identity may do. A missing rule set allows nothing. */
export interface PermissionRules {
  publish?: RuleSet;
  subscribe?: RuleSet;
  /** Queue name patterns (dot-separated like subjects) for Enqueue, Receive, Ack, Nack, Stats. */
  queue?: RuleSet;
}

type Pattern = readonly string[];

/** True when every subject `filter` matches is also matched by `pattern` (both may hold wildcards). */
export function covers(pattern: Pattern, filter: Pattern): boolean {
  for (let i = 0; i < pattern.length; i++) {
    const p = pattern[i]!;
    if (p === ">") return filter.length > i;
    if (i >= filter.length) return false;
    const f = filter[i]!;
    if (f === ">") return false;
    if (p !== "*" && (f === "*" || p !== f)) return false;
  }
  return pattern.length === filter.length;
}

/** True when some subject matches both `a` and `b`. */
export function overlaps(a: Pattern, b: Pattern): boolean {
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    const x = a[i];
    const y = b[i];
    if (x === ">" || y === ">") return x !== undefined && y !== undefined;
    if (x === undefined || y === undefined) return false;
    if (x !== "*" && y !== "*" && x !== y) return false;
  }
  return true;
}

function compile(rules: RuleSet | undefined, where: string): { allow: Pattern[]; deny: Pattern[] } {
  const parse = (list: string[] | undefined, kind: string) =>
    (list ?? []).map((p, i) => {
      try {
        return parseSubject(p, { wildcards: true });
      } catch (e) {
        throw new Error(`${where}.${kind}[${i}]: ${(e as Error).message}`);
      }
    });
  return { allow: parse(rules?.allow, "allow"), deny: parse(rules?.deny, "deny") };
}

/** Compiled permissions of one identity. */
export class Permissions {
  private readonly pub: { allow: Pattern[]; deny: Pattern[] };
  private readonly sub: { allow: Pattern[]; deny: Pattern[] };
  private readonly queue: { allow: Pattern[]; deny: Pattern[] };

  constructor(rules: PermissionRules, where = "permissions") {
    this.pub = compile(rules.publish, `${where}.publish`);
    this.sub = compile(rules.subscribe, `${where}.subscribe`);
    this.queue = compile(rules.queue, `${where}.queue`);
  }

  /** Everything, for the cluster token (admin) and an open anonymous default. */
  static all(): Permissions {
    const everything = { allow: [">"] };
    return new Permissions({ publish: everything, subscribe: everything, queue: everything });
  }

  canPublish(subject: Pattern): boolean {
    return allowed(this.pub, subject);
  }

  /** A filter is allowed when an allow pattern covers it and no deny pattern covers it. */
  canSubscribe(filter: Pattern): boolean {
    return (
      this.sub.allow.some((p) => covers(p, filter)) && !this.sub.deny.some((p) => covers(p, filter))
    );
  }

  /** Deny patterns that overlap a filter: its messages on them are withheld at delivery (NATS). */
  subscribeDenials(filter: Pattern): Pattern[] {
    return this.sub.deny.filter((p) => overlaps(p, filter));
  }

  /** Explicit permission for reply inboxes: an allow pattern whose first token is `_INBOX`. */
  seesInboxes(): boolean {
    return this.sub.allow.some((p) => p[0] === "_INBOX");
  }

  canUseQueue(name: string): boolean {
    return allowed(this.queue, name.split("."));
  }
}

function allowed(rules: { allow: Pattern[]; deny: Pattern[] }, subject: Pattern): boolean {
  return rules.allow.some((p) => covers(p, subject)) && !rules.deny.some((p) => covers(p, subject));
}
