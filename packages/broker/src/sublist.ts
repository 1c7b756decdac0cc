/**
 * A token trie of subscriptions with a cache of match results, after nats-server's sublist:
 * each level maps literal tokens to nodes and has optional `*` and `>` children, so a match
 * walks only the branches a subject can reach, whatever the number of subscriptions.
 */

/** What the trie stores: a subscription with its parsed filter and optional queue group. */
export interface SublistEntry {
  readonly filter: readonly string[];
  /** Empty for a plain subscription. */
  readonly queueGroup: string;
}

/** The subscriptions matching one subject. */
export interface MatchResult<S extends SublistEntry> {
  /** Plain subscriptions: each gets the message. */
  plain: S[];
  /** Queue groups by name: one member of each gets the message. */
  groups: Map<string, S[]>;
}

interface Level<S> {
  literal: Map<string, Node<S>>;
  star?: Node<S>;
  rest?: Node<S>;
}

interface Node<S> {
  next?: Level<S>;
  entries: Set<S>;
}

const newLevel = <S>(): Level<S> => ({ literal: new Map() });
const newNode = <S>(): Node<S> => ({ entries: new Set() });

/** Subscription trie with a result cache cleared on every change. */
export class Sublist<S extends SublistEntry> {
  private readonly root: Level<S> = newLevel();
  private readonly cache = new Map<string, MatchResult<S>>();
  private readonly cacheLimit: number;
  private entries = 0;

  constructor(options: { cacheLimit?: number } = {}) {
    this.cacheLimit = options.cacheLimit ?? 4096;
  }

  get size(): number {
    return this.entries;
  }

  insert(entry: S): void {
    let level = this.root;
    let node: Node<S> | undefined;
    for (let i = 0; i < entry.filter.length; i++) {
      const token = entry.filter[i]!;
      if (node) level = node.next ??= newLevel();
      if (token === "*") node = level.star ??= newNode();
      else if (token === ">") node = level.rest ??= newNode();
      else {
        let found = level.literal.get(token);
        if (!found) {
          found = newNode();
          level.literal.set(token, found);
        }
        node = found;
      }
    }
    if (!node) return;
    if (!node.entries.has(entry)) {
      node.entries.add(entry);
      this.entries++;
      this.cache.clear();
    }
  }

  /** Removes an entry; returns false when it was not there. Prunes empty branches. */
  remove(entry: S): boolean {
    const path: { level: Level<S>; token: string; node: Node<S> }[] = [];
    let level = this.root;
    for (let i = 0; i < entry.filter.length; i++) {
      const token = entry.filter[i]!;
      const node =
        token === "*" ? level.star : token === ">" ? level.rest : level.literal.get(token);
      if (!node) return false;
      path.push({ level, token, node });
      if (i < entry.filter.length - 1) {
        if (!node.next) return false;
        level = node.next;
      }
    }
    const last = path[path.length - 1];
    if (!last?.node.entries.delete(entry)) return false;
    this.entries--;
    this.cache.clear();
    for (let i = path.length - 1; i >= 0; i--) {
      const { level: parent, token, node } = path[i]!;
      if (node.entries.size > 0 || (node.next && !levelIsEmpty(node.next))) break;
      if (token === "*") parent.star = undefined;
      else if (token === ">") parent.rest = undefined;
      else parent.literal.delete(token);
    }
    return true;
  }

  /** Every subscription matching a literal subject (given as its tokens). */
  match(subject: string, tokens: readonly string[]): MatchResult<S> {
    const cached = this.cache.get(subject);
    if (cached) return cached;
    const result: MatchResult<S> = { plain: [], groups: new Map() };
    matchLevel(this.root, tokens, 0, result);
    if (this.cache.size >= this.cacheLimit) {
      // Evict the oldest entry; Map iterates in insertion order.
      this.cache.delete(this.cache.keys().next().value!);
    }
    this.cache.set(subject, result);
    return result;
  }
}

function levelIsEmpty<S>(level: Level<S>): boolean {
  return level.literal.size === 0 && !level.star && !level.rest;
}

function matchLevel<S extends SublistEntry>(
  level: Level<S>,
  tokens: readonly string[],
  i: number,
  result: MatchResult<S>,
): void {
  const last = i === tokens.length - 1;
  if (level.rest) collect(level.rest, result);
  if (level.star) {
    if (last) collect(level.star, result);
    else if (level.star.next) matchLevel(level.star.next, tokens, i + 1, result);
  }
  const node = level.literal.get(tokens[i]!);
  if (!node) return;
  if (last) collect(node, result);
  else if (node.next) matchLevel(node.next, tokens, i + 1, result);
}

function collect<S extends SublistEntry>(node: Node<S>, result: MatchResult<S>): void {
  for (const entry of node.entries) {
    if (entry.queueGroup === "") {
      result.plain.push(entry);
      continue;
    }
    const members = result.groups.get(entry.queueGroup);
    if (members) members.push(entry);
    else result.groups.set(entry.queueGroup, [entry]);
  }
}
