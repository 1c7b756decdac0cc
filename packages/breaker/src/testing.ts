import type { Clock } from "./clock.ts";

export { seededRandom } from "./random.ts";

/** A clock that moves only when told to, for deterministic tests of time-based behaviour. */
export class FakeClock implements Clock {
  #now: number;

  /** Starts at `start` ms since the epoch (default 2025-01-01T00:00:00Z). */
  constructor(start = Date.UTC(2025, 0, 1)) {
    this.#now = start;
  }

  now(): number {
    return this.#now;
  }

  /** Moves time forward by `ms` (which must not be negative). */
  advance(ms: number): void {
    if (!(ms >= 0)) throw new RangeError(`FakeClock.advance: ms must be >= 0, got ${ms}`);
    this.#now += ms;
  }

  /** Jumps to an absolute time, which must not be earlier than now. */
  set(epochMs: number): void {
    if (!(epochMs >= this.#now))
      throw new RangeError(`FakeClock.set: cannot move back from ${this.#now} to ${epochMs}`);
    this.#now = epochMs;
  }
}
