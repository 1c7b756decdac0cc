import type { Clock } from "./clock.ts";

interface Timer {
  at: number;
  callback: () => void;
}

/**
 * A clock that moves only when told to, for deterministic tests of time-based behaviour.
 * Timers fire synchronously inside {@link FakeClock.advance} / {@link FakeClock.set}, in due
 * order (ties in scheduling order), with `now()` equal to their due time.
 */
export class FakeClock implements Clock {
  #now: number;
  readonly #timers = new Map<number, Timer>();
  #nextId = 1;

  /** Starts at `start` ms since the epoch (default 2025-01-01T00:00:00Z). */
  constructor(start = Date.UTC(2025, 0, 1)) {
    this.#now = start;
  }

  now(): number {
    return this.#now;
  }

  setTimeout(callback: () => void, ms: number): unknown {
    const id = this.#nextId++;
    this.#timers.set(id, { at: this.#now + Math.max(0, ms), callback });
    return id;
  }

  clearTimeout(handle: unknown): void {
    this.#timers.delete(handle as number);
  }

  /** How many timers are scheduled and not yet fired or cleared. */
  get pendingTimers(): number {
    return this.#timers.size;
  }

  /** Moves time forward by `ms` (which must not be negative), firing timers that fall due. */
  advance(ms: number): void {
    if (!(ms >= 0)) throw new RangeError(`FakeClock.advance: ms must be >= 0, got ${ms}`);
    this.#runUntil(this.#now + ms);
  }

  /** Jumps to an absolute time, which must not be earlier than now, firing timers on the way. */
  set(epochMs: number): void {
    if (!(epochMs >= this.#now))
      throw new RangeError(`FakeClock.set: cannot move back from ${this.#now} to ${epochMs}`);
    this.#runUntil(epochMs);
  }

  #runUntil(end: number): void {
    for (;;) {
      // Rescan after each callback: it may schedule or clear timers.
      let due: [number, Timer] | undefined;
      for (const entry of this.#timers)
        if (entry[1].at <= end && (!due || entry[1].at < due[1].at)) due = entry;
      if (!due) break;
      this.#timers.delete(due[0]);
      this.#now = Math.max(this.#now, due[1].at);
      due[1].callback();
    }
    this.#now = end;
  }
}
