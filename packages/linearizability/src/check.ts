import type { Model, Operation } from "./model.ts";

export interface CheckOptions {
  /**
   * Search steps allowed over the whole history before giving up with `unknown`. The search is
   * exponential in the worst case (linearizability checking is NP-complete); partitioning and
   * memoization keep real histories far below this.
   */
  maxSteps?: number;
}

export type CheckResult<I, O> =
  | { outcome: "ok" }
  | {
      outcome: "illegal";
      /** The independent sub-history (e.g. one key's operations) that has no linearization. */
      partition: Operation<I, O>[];
      /** The longest prefix of operations the search could order legally, in that order. */
      longest: Operation<I, O>[];
    }
  | { outcome: "unknown"; reason: string };

const defaultMaxSteps = 50_000_000;

/**
 * Decides whether a concurrent history is linearizable with respect to a sequential model:
 * whether each operation can be given one instant between its call and its return such that
 * the operations, run in that order on the model, give exactly the outputs that were seen.
 *
 * This is Wing & Gong's search with Lowe's memoization, as Porcupine implements it: the
 * history is a doubly linked list of call and return events in time order; the search
 * linearizes the first call it can, removes it (and its return) from the list, and
 * backtracks when it reaches a return whose call it could not place. A (set of linearized
 * operations, model state) pair already explored is never explored again. The model may
 * split the history into independent parts (`partition`, e.g. one per key), each checked alone.
 */
export function checkOperations<S, I, O>(
  model: Model<S, I, O>,
  history: readonly Operation<I, O>[],
  options: CheckOptions = {},
): CheckResult<I, O> {
  for (const op of history) {
    if (!(op.return >= op.call)) {
      throw new RangeError(`operation returns (${op.return}) before its call (${op.call})`);
    }
  }
  const budget = { steps: options.maxSteps ?? defaultMaxSteps };
  const parts = model.partition ? model.partition(history) : [history];
  for (const part of parts) {
    const result = checkPartition(model, part, budget);
    if (result.outcome !== "ok") return result;
  }
  return { outcome: "ok" };
}

interface Event<I, O> {
  /** Index of the operation in its partition. */
  id: number;
  isCall: boolean;
  time: number;
  op: Operation<I, O>;
  /** For a call, its return. */
  match: Event<I, O> | undefined;
  prev: Event<I, O> | undefined;
  next: Event<I, O> | undefined;
}

interface Choice<S, I, O> {
  call: Event<I, O>;
  /** The state before this operation. */
  before: S;
  /** The states the operation may lead to (more than one when its outcome is unknown). */
  options: readonly S[];
  taken: number;
}

function checkPartition<S, I, O>(
  model: Model<S, I, O>,
  ops: readonly Operation<I, O>[],
  budget: { steps: number },
): CheckResult<I, O> {
  const head = eventList(ops);
  const linearized = new Bitset(ops.length);
  // Lowe's memoization: for each set of linearized operations, the states already explored.
  const seen = new Map<string, Set<string>>();
  const stack: Choice<S, I, O>[] = [];
  let longest: Operation<I, O>[] = [];
  let state = model.init();
  let entry = head.next;

  // Tries the operation's possible next states from `from` on; on success the operation is
  // linearized and taken out of the list.
  const tryLinearize = (call: Event<I, O>, options: readonly S[], from: number): boolean => {
    linearized.set(call.id);
    const setKey = linearized.key();
    let states = seen.get(setKey);
    for (let i = from; i < options.length; i++) {
      const next = options[i] as S;
      const stateKey = model.key(next);
      if (states?.has(stateKey)) continue;
      if (!states) {
        states = new Set();
        seen.set(setKey, states);
      }
      states.add(stateKey);
      stack.push({ call, before: state, options, taken: i });
      state = next;
      lift(call);
      return true;
    }
    linearized.clear(call.id);
    return false;
  };

  while (head.next !== undefined) {
    if (--budget.steps < 0) {
      return { outcome: "unknown", reason: "the search ran out of steps (maxSteps)" };
    }
    const current = entry as Event<I, O>;
    if (current.isCall) {
      const options = model.step(state, current.op.input, current.op.output);
      if (options.length > 0 && tryLinearize(current, options, 0)) {
        entry = head.next;
      } else {
        entry = current.next;
      }
      continue;
    }
    // A return whose call is still in the list: that operation had to take effect before
    // now, and no order tried so far allows it. Undo the last choice and try its next option.
    // (The deepest order is copied only here, when a search backs out of it.)
    if (stack.length > longest.length) longest = stack.map((c) => c.call.op);
    const top = stack.pop();
    if (!top) return { outcome: "illegal", partition: [...ops], longest };
    state = top.before;
    linearized.clear(top.call.id);
    unlift(top.call);
    entry = tryLinearize(top.call, top.options, top.taken + 1) ? head.next : top.call.next;
  }
  return { outcome: "ok" };
}

function eventList<I, O>(ops: readonly Operation<I, O>[]): Event<I, O> {
  const events: Event<I, O>[] = [];
  ops.forEach((op, id) => {
    const ret: Event<I, O> = {
      id,
      isCall: false,
      time: op.return,
      op,
      match: undefined,
      prev: undefined,
      next: undefined,
    };
    events.push({
      id,
      isCall: true,
      time: op.call,
      op,
      match: ret,
      prev: undefined,
      next: undefined,
    });
    events.push(ret);
  });
  // At equal times a call sorts before a return: the two operations count as concurrent, so
  // a clock too coarse to order them never produces a false violation.
  events.sort((a, b) => a.time - b.time || (a.isCall === b.isCall ? 0 : a.isCall ? -1 : 1));
  const head: Event<I, O> = {
    id: -1,
    isCall: false,
    time: Number.NEGATIVE_INFINITY,
    op: undefined as unknown as Operation<I, O>,
    match: undefined,
    prev: undefined,
    next: undefined,
  };
  let last = head;
  for (const e of events) {
    last.next = e;
    e.prev = last;
    last = e;
  }
  return head;
}

/** Takes a call and its return out of the list (dancing links: they keep their pointers). */
function lift<I, O>(call: Event<I, O>): void {
  unlink(call);
  unlink(call.match as Event<I, O>);
}

function unlift<I, O>(call: Event<I, O>): void {
  relink(call.match as Event<I, O>);
  relink(call);
}

function unlink<I, O>(e: Event<I, O>): void {
  (e.prev as Event<I, O>).next = e.next;
  if (e.next) e.next.prev = e.prev;
}

function relink<I, O>(e: Event<I, O>): void {
  (e.prev as Event<I, O>).next = e;
  if (e.next) e.next.prev = e;
}

class Bitset {
  private readonly words: Uint32Array;
  constructor(size: number) {
    this.words = new Uint32Array(Math.ceil(size / 32) || 1);
  }
  set(i: number): void {
    this.words[i >>> 5] = (this.words[i >>> 5] as number) | (1 << (i & 31));
  }
  clear(i: number): void {
    this.words[i >>> 5] = (this.words[i >>> 5] as number) & ~(1 << (i & 31));
  }
  key(): string {
    return String.fromCharCode(...new Uint16Array(this.words.buffer));
  }
}
