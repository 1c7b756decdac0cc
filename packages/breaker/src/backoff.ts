import type { Random } from "@quartet/determinism";

/** How long an open breaker waits before letting probes through. */
export interface BackoffOptions {
  /** Growth factor per reopen without a close in between; default 2. */
  multiplier?: number;
  /** Upper bound of the wait in milliseconds (jitter never exceeds it). */
  maxMs: number;
  /**
   * Fraction in [0, 1] of the wait that is randomised: the wait is drawn uniformly from
   * `[d * (1 - jitter), d]`, so breakers opened together do not all probe at once. Default 0.
   */
  jitter?: number;
}

/**
 * The wait before the `attempt`-th probe (0 = first opening since the last close):
 * `baseMs * multiplier^attempt`, capped at `maxMs`, minus up to `jitter` of itself.
 * Without backoff options the wait is always `baseMs`.
 */
export class ResetTimeout {
  readonly #baseMs: number;
  readonly #multiplier: number;
  readonly #maxMs: number;
  readonly #jitter: number;
  readonly #random: Random;

  constructor(baseMs: number, backoff: BackoffOptions | undefined, random: Random) {
    if (!(baseMs >= 0 && Number.isFinite(baseMs)))
      throw new RangeError(`resetTimeoutMs must be a finite number >= 0, got ${baseMs}`);
    this.#baseMs = baseMs;
    this.#random = random;
    if (backoff === undefined) {
      this.#multiplier = 1;
      this.#maxMs = baseMs;
      this.#jitter = 0;
      return;
    }
    const multiplier = backoff.multiplier ?? 2;
    const jitter = backoff.jitter ?? 0;
    if (!(multiplier >= 1))
      throw new RangeError(`backoff.multiplier must be >= 1, got ${multiplier}`);
    if (!(backoff.maxMs >= baseMs))
      throw new RangeError(
        `backoff.maxMs (${backoff.maxMs}) must be >= resetTimeoutMs (${baseMs})`,
      );
    if (!(jitter >= 0 && jitter <= 1))
      throw new RangeError(`backoff.jitter must be in [0, 1], got ${jitter}`);
    this.#multiplier = multiplier;
    this.#maxMs = backoff.maxMs;
    this.#jitter = jitter;
  }

  delayMs(attempt: number): number {
    const d = Math.min(this.#maxMs, this.#baseMs * this.#multiplier ** attempt);
    if (this.#jitter === 0) return d;
    return d * (1 - this.#jitter * this.#random());
  }
}
