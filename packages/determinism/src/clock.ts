/**
 * Time and timers. Cores read time and schedule work only through a Clock, so tests and
 * simulations can drive them with a fake one.
 */
export interface Clock {
  /** Milliseconds since the Unix epoch (so times can be shown as dates). */
  now(): number;
  /** Calls `callback` once, `ms` from now; returns a handle for {@link Clock.clearTimeout}. */
  setTimeout(callback: () => void, ms: number): unknown;
  /** Cancels a timer from {@link Clock.setTimeout}; unknown or fired handles are ignored. */
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
