import type { Endpoint } from "../endpoint.ts";
import { hashString } from "../hash.ts";

/** A hash ring: sorted 32-bit positions, each owned by one endpoint. */
export interface Ring {
  readonly endpoints: Endpoint[];
  readonly positions: Uint32Array;
  /** Index into `endpoints` for each position. */
  readonly owners: Int32Array;
}

/** Ring options shared by ring hash and bounded loads. */
export interface RingOptions {
  /**
   * Virtual nodes of the lightest endpoint (default 160, as ketama); an endpoint of k times its
   * weight gets k times as many. More nodes, smoother load.
   */
  replicas?: number;
  /** The ring has at least this many nodes, scaled up if needed (default 1,024, as Envoy). */
  minRingSize?: number;
  /** The ring has at most this many nodes, scaled down if needed (default 8,388,608, as Envoy). */
  maxRingSize?: number;
}

export const DEFAULT_REPLICAS = 160;
export const DEFAULT_MIN_RING_SIZE = 1024;
export const DEFAULT_MAX_RING_SIZE = 8 * 1024 * 1024;
/** Largest maxRingSize accepted: 512 MiB of build-time scratch at most. */
export const MAX_RING_SIZE_LIMIT = 64 * 1024 * 1024;
/** A node is sorted as position x 2^21 + owner in one double (53 bits): so at most 2^21 owners. */
const OWNER_BITS = 2 ** 21;

export interface RingSettings {
  readonly what: string;
  readonly replicas: number;
  readonly minRingSize: number;
  readonly maxRingSize: number;
}

/** Validates ring options once, when the picker is created. */
export function ringSettings(what: string, options: RingOptions): RingSettings {
  const replicas = options.replicas ?? DEFAULT_REPLICAS;
  const minRingSize = options.minRingSize ?? DEFAULT_MIN_RING_SIZE;
  const maxRingSize = options.maxRingSize ?? DEFAULT_MAX_RING_SIZE;
  if (!Number.isSafeInteger(replicas) || replicas < 1)
    throw new Error(
      `${what}: replicas must be an integer >= 1 (virtual nodes of the lightest endpoint; default ${DEFAULT_REPLICAS}), got ${replicas}`,
    );
  for (const [name, value] of [
    ["minRingSize", minRingSize],
    ["maxRingSize", maxRingSize],
  ] as const)
    if (!Number.isInteger(value) || value < 1 || value > MAX_RING_SIZE_LIMIT)
      throw new Error(
        `${what}: ${name} must be an integer in [1, ${MAX_RING_SIZE_LIMIT}], got ${value}`,
      );
  if (maxRingSize < minRingSize)
    throw new Error(
      `${what}: maxRingSize (${maxRingSize}) must be >= minRingSize (${minRingSize})`,
    );
  return { what, replicas, minRingSize, maxRingSize };
}

/**
 * Virtual nodes per endpoint, by normalised weight (weight / lightest weight): the lightest gets
 * `replicas`, so weights 5,000 x 10 build the same 1,600-node ring as weights 1 x 10 rather than
 * 8 million nodes. The ring is then scaled (as Envoy does) to hold at least `minRingSize` nodes
 * and at most `maxRingSize`, each endpoint keeping at least one. Counts change only when the
 * set of weights changes, so membership changes still move only the leaver's or joiner's keys
 * (unless a bound starts or stops applying).
 */
export function nodeCounts(endpoints: readonly Endpoint[], settings: RingSettings): number[] {
  const n = endpoints.length;
  if (n === 0) return [];
  if (n > settings.maxRingSize || n >= OWNER_BITS)
    throw new Error(
      `${settings.what}: ${n} endpoints cannot each own a node of a ring of at most ${Math.min(settings.maxRingSize, OWNER_BITS - 1)}; raise maxRingSize`,
    );
  let lightest = Number.POSITIVE_INFINITY;
  let sum = 0;
  for (const e of endpoints) {
    lightest = Math.min(lightest, e.weight);
    sum += e.weight;
  }
  let counts = endpoints.map((e) => Math.floor((settings.replicas * e.weight) / lightest));
  let total = counts.reduce((s, c) => s + c, 0);
  if (total < settings.minRingSize) {
    counts = endpoints.map((e) => Math.ceil((e.weight * settings.minRingSize) / sum));
    total = counts.reduce((s, c) => s + c, 0);
  }
  if (total > settings.maxRingSize) {
    // Leave room for the endpoints that round to zero and are raised to one node.
    const room = settings.maxRingSize - n;
    counts = endpoints.map((e) => Math.max(1, Math.floor((e.weight * room) / sum)));
  }
  return counts;
}

/**
 * Places each endpoint's virtual nodes (see `nodeCounts`) at XXH32(`<id>#<n>`). A node's place
 * depends only on its endpoint's id, so adding or removing an endpoint moves only the keys
 * that land on that endpoint's nodes.
 */
export function buildRing(endpoints: Endpoint[], settings: RingSettings): Ring {
  const counts = nodeCounts(endpoints, settings);
  const count = counts.reduce((s, c) => s + c, 0);
  // One double per node, position x 2^21 + owner: a plain numeric sort orders by position,
  // then owner, with no comparator and no index array.
  const nodes = new Float64Array(count);
  let k = 0;
  for (let slot = 0; slot < endpoints.length; slot++) {
    const id = endpoints[slot]!.id;
    for (let r = 0; r < counts[slot]!; r++)
      nodes[k++] = hashString(`${id}#${r}`) * OWNER_BITS + slot;
  }
  nodes.sort();
  const positions = new Uint32Array(count);
  const owners = new Int32Array(count);
  for (let i = 0; i < count; i++) {
    const node = nodes[i]!;
    const position = Math.floor(node / OWNER_BITS);
    positions[i] = position;
    owners[i] = node - position * OWNER_BITS;
  }
  return { endpoints, positions, owners };
}

/** Index of the first ring position at or after `hash`, wrapping to 0. O(log n). */
export function ringIndex(ring: Ring, hash: number): number {
  const positions = ring.positions;
  let lo = 0;
  let hi = positions.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (positions[mid]! < hash) lo = mid + 1;
    else hi = mid;
  }
  return lo === positions.length ? 0 : lo;
}
