// Follows a server stream for as long as the page shows it: on an error or an end it opens the
// stream again after a backoff (250 ms doubling to 5 s, reset by a message), and reports
// whether it is live so the page can say "reconnecting" instead of showing stale data as live.
import { ConnectError } from "@connectrpc/connect";

export type StreamState = "connecting" | "live" | "retrying";

/** What a stream's state means to a reader: "retrying: [unauthenticated] ..." says what to fix. */
export function describe(state: StreamState, error?: unknown): string {
  if (state !== "retrying" || error === undefined) return state;
  return `retrying: ${ConnectError.from(error).message}`;
}

export function follow<T>(
  signal: AbortSignal,
  open: (signal: AbortSignal) => AsyncIterable<T>,
  onMessage: (message: T) => void,
  onState: (state: StreamState, error?: unknown) => void = () => {},
): void {
  void (async () => {
    let backoff = 250;
    while (!signal.aborted) {
      onState("connecting");
      let failure: unknown;
      try {
        for await (const message of open(signal)) {
          backoff = 250;
          onState("live");
          onMessage(message);
        }
      } catch (error) {
        failure = error;
      }
      if (signal.aborted) return;
      onState("retrying", failure);
      await pause(signal, backoff);
      backoff = Math.min(5000, backoff * 2);
    }
  })();
}

/** Waits `ms`, or less when the signal aborts first. */
function pause(signal: AbortSignal, ms: number): Promise<void> {
  return new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener(
      "abort",
      () => {
        clearTimeout(timer);
        resolve();
      },
      { once: true },
    );
  });
}
