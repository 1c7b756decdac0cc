import { Node, Yallist } from "yallist";

/**
 * The things in progress (calls, requests still arriving, connections, proposals) that come
 * and go thousands of times a second, oldest first.
 *
 * Not a Map or Set: one that churns replaces its hash table every few inserts, and each
 * replaced table keeps its entries and a link to the next table. Once one table is in V8's
 * old generation, that chain keeps every entry it ever held alive through young-generation
 * GCs until a full GC, so each call is copied and promoted instead of dying young (in the
 * gateway: 3 MB surviving each scavenge instead of 0.1 MB, pauses 4-7 ms instead of 1;
 * BENCHMARKS.md). A linked list whose removed nodes drop their links holds nothing once an
 * entry is gone.
 */
export class LiveSet<T> {
  readonly #list = new Yallist<T>();

  /** Adds `value` last; returns what removes it (once; later calls do nothing). */
  add(value: T): () => void {
    const node = new Node(value);
    this.#list.pushNode(node);
    return () => {
      // removeNode, never shift or pop: those leave the node's link to its neighbour.
      if (node.list === this.#list) this.#list.removeNode(node);
    };
  }

  get size(): number {
    return this.#list.length;
  }

  /** The entry added longest ago that is still here. */
  oldest(): T | undefined {
    return this.#list.head?.value;
  }

  /** The entry added last that is still here. */
  newest(): T | undefined {
    return this.#list.tail?.value;
  }

  /** The entries now, oldest first: a copy, so a caller may remove entries while it goes. */
  values(): T[] {
    return this.#list.toArray();
  }
}
