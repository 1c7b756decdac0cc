/**
 * A budget of `capacity` events per `windowMs`, refilled continuously: a burst of `capacity`
 * is allowed, then events at the refill rate. Time comes from `now` so tests can drive it.
 */
export class TokenBucket {
  private tokens: number;
  private last: number;

  private readonly capacity: number;
  private readonly windowMs: number;
  private readonly now: () => number;

  constructor(
    capacity: number,
    windowMs: number,
    now: () => number = performance.now.bind(performance),
  ) {
    this.capacity = capacity;
    this.windowMs = windowMs;
    this.now = now;
    this.tokens = capacity;
    this.last = now();
  }

  /** Spends one token; false when the budget is spent. */
  take(): boolean {
    const now = this.now();
    this.tokens = Math.min(
      this.capacity,
      this.tokens + ((now - this.last) * this.capacity) / this.windowMs,
    );
    this.last = now;
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }
}
