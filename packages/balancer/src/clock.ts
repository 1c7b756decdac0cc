/** Time and timers, injected so health checks and ejections run on a fake clock in tests. */
export interface Clock {
  /** Milliseconds since the epoch (the breaker shows probe times as dates). */
  now(): number;
  setTimeout(callback: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

/** The real clock: `Date.now()` and unref'd Node timers (they never keep a process up). */
export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout(callback, ms) {
    const handle = setTimeout(callback, ms);
    handle.unref();
    return handle;
  },
  clearTimeout(handle) {
    clearTimeout(handle as ReturnType<typeof setTimeout>);
  },
};
