/** A source of uniform numbers in [0, 1), like `Math.random`. Inject a seeded one for replays. */
export type Random = () => number;

/**
 * A small seeded generator (mulberry32): the same seed always gives the same sequence, so
 * jitter, picks and simulated faults can be replayed. Fast and well spread; not for
 * cryptography.
 */
export function seededRandom(seed: number): Random {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** An integer in [0, n), drawn from `random`. */
export function randomInt(random: Random, n: number): number {
  return Math.floor(random() * n);
}
