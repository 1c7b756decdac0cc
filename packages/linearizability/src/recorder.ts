import type { Operation } from "./model.ts";

export interface RecorderOptions<O> {
  /** A monotonic clock in any unit; performance.now() by default. */
  now?: () => number;
  /** The output to record when a call's outcome is unknown. */
  unknown: O;
}

/**
 * Records a history of real calls for the checker. A call that answers is recorded with its
 * output; one that fails is recorded as outcome-unknown (it may have taken effect), unless
 * the caller tells `run` that the error proves it did not (then it is left out: an operation
 * with no effect constrains nothing).
 */
export class HistoryRecorder<I, O> {
  private readonly ops: Operation<I, O>[] = [];
  private readonly now: () => number;
  private readonly unknown: O;

  constructor(options: RecorderOptions<O>) {
    this.now = options.now ?? (() => performance.now());
    this.unknown = options.unknown;
  }

  async run(
    clientId: number,
    input: I,
    call: () => Promise<O>,
    hadNoEffect: (error: unknown) => boolean = () => false,
  ): Promise<O | undefined> {
    const start = this.now();
    try {
      const output = await call();
      this.ops.push({ clientId, input, call: start, return: this.now(), output });
      return output;
    } catch (error) {
      if (!hadNoEffect(error)) {
        this.ops.push({
          clientId,
          input,
          call: start,
          return: Number.POSITIVE_INFINITY,
          output: this.unknown,
        });
      }
      return undefined;
    }
  }

  history(): readonly Operation<I, O>[] {
    return this.ops;
  }
}
