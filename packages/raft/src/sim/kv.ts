import type { Entry } from "../types.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Encodes a `key=value` write as entry data for {@link KvStateMachine}. */
export function encodePut(key: string, value: string): Uint8Array {
  return encoder.encode(`${key}=${value}`);
}

/**
 * The simulator's replicated state machine: a string map plus a rolling hash of every entry
 * applied, so two replicas (or a replica and a snapshot) can be compared in O(1).
 */
export class KvStateMachine {
  readonly data = new Map<string, string>();
  /** Index of the last applied entry. */
  applied: number;
  /** Rolling FNV-1a hash over (index, term, type, data) of every applied entry. */
  hash: number;

  constructor(applied = 0, hash = 0) {
    this.applied = applied;
    this.hash = hash;
  }

  /** Rebuilds a state machine from snapshot data made by {@link encode}. */
  static restore(index: number, data: Uint8Array): KvStateMachine {
    if (data.byteLength === 0) return new KvStateMachine(index, 0);
    const s = JSON.parse(decoder.decode(data)) as { hash: number; kv: [string, string][] };
    const kv = new KvStateMachine(index, s.hash);
    for (const [k, v] of s.kv) kv.data.set(k, v);
    return kv;
  }

  /** Applies one committed entry. Conf changes only feed the hash. */
  apply(e: Entry): void {
    if (e.index !== this.applied + 1)
      throw new Error(`apply: entry ${e.index} does not follow applied ${this.applied}`);
    this.applied = e.index;
    this.hash = hashEntry(this.hash, e);
    if (e.type !== "normal" || e.data.byteLength === 0) return;
    const s = decoder.decode(e.data);
    const eq = s.indexOf("=");
    if (eq > 0) this.data.set(s.slice(0, eq), s.slice(eq + 1));
  }

  /** The state as snapshot data. */
  encode(): Uint8Array {
    return encoder.encode(JSON.stringify({ hash: this.hash, kv: [...this.data] }));
  }
}

/** Extends rolling hash `h` with one entry. */
export function hashEntry(h: number, e: Entry): number {
  let x = (h ^ 0x811c9dc5) >>> 0;
  x = mix(x, e.index);
  x = mix(x, e.term);
  x = mix(x, e.type === "normal" ? 1 : 2);
  const d = e.data;
  for (let i = 0; i < d.length; i++) x = Math.imul(x ^ d[i]!, 0x01000193) >>> 0;
  return x;
}

function mix(x: number, n: number): number {
  let y = x;
  for (let i = 0; i < 4; i++) {
    y = Math.imul(y ^ (n & 0xff), 0x01000193) >>> 0;
    n = Math.floor(n / 256);
  }
  return y;
}
