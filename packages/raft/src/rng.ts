/** A source of uniformly distributed numbers in [0, 1). Inject a seeded one for determinism. */
export type Rng = () => number;

/**
 * mulberry32: a tiny, fast, seeded 32-bit generator. Good enough for election jitter and
 * simulated faults; not for cryptography.
 */
export function mulberry32(seed: number): Rng {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** An integer in [0, n). */
export function randomInt(rng: Rng, n: number): number {
  return Math.floor(rng() * n);
}
