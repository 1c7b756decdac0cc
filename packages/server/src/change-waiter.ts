/**
 * For a server stream that sends when something changes: remembers whether a change came
 * since the last look (so one during a send is not missed), and waits for the next one, a
 * timeout (a periodic or heartbeat send), or the call's end, whichever comes first.
 */
export class ChangeWaiter {
  #changed = true;
  #wake: (() => void) | undefined;
  readonly #stop: () => void;
  readonly #signal: AbortSignal;
  readonly #aborted = () => this.#wake?.();

  /** `listen` registers a change callback and returns what unregisters it. */
  constructor(listen: (changed: () => void) => () => void, signal: AbortSignal) {
    this.#signal = signal;
    this.#stop = listen(() => {
      this.#changed = true;
      this.#wake?.();
    });
    signal.addEventListener("abort", this.#aborted);
  }

  /** Whether a change came since the last call (true the first time); clears the mark. */
  take(): boolean {
    const changed = this.#changed;
    this.#changed = false;
    return changed;
  }

  /** Resolves at a change (now, if one is marked), after `timeoutMs` if given, or at abort. */
  wait(timeoutMs?: number): Promise<void> {
    if (this.#changed || this.#signal.aborted) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const timer =
        timeoutMs === undefined
          ? undefined
          : setTimeout(() => this.#wake?.(), Math.max(0, timeoutMs));
      this.#wake = () => {
        clearTimeout(timer);
        this.#wake = undefined;
        resolve();
      };
    });
  }

  close(): void {
    this.#stop();
    this.#signal.removeEventListener("abort", this.#aborted);
  }
}
