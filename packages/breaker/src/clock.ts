/** Source of the current time in milliseconds since the Unix epoch. The breaker reads time only here. */
export interface Clock {
  now(): number;
}

/** The wall clock (`Date.now()`), so next-probe times can be shown as ISO timestamps. */
export const systemClock: Clock = { now: Date.now };
