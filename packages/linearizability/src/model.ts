/** One call of a concurrent history, as a client saw it. */
export interface Operation<I, O> {
  /** Who made the call (for reports; the checker does not use it). */
  clientId: number;
  input: I;
  /** When the call was sent, on one monotonic clock shared by the whole history. */
  call: number;
  /**
   * When its result came back. A call whose outcome is unknown (timed out, connection lost
   * after sending) gets `Infinity`: it may have taken effect at any point after its call, or
   * never, and its output must be one the model accepts as unknown.
   */
  return: number;
  output: O;
}

/** The sequential specification a history is checked against. */
export interface Model<S, I, O> {
  init(): S;
  /**
   * The states the system can be in after `input` ran on `state` and answered `output`: none
   * when that output is impossible, more than one when the output leaves the effect open
   * (e.g. a compare-and-set whose answer was lost). States are never mutated.
   */
  step(state: S, input: I, output: O): readonly S[];
  /** Equal states give equal keys (the search memoizes on them). */
  key(state: S): string;
  /** Splits a history into parts that cannot affect each other, e.g. one per key. */
  partition?(history: readonly Operation<I, O>[]): Operation<I, O>[][];
  /** One line about an operation, for failure reports. */
  describe?(op: Operation<I, O>): string;
}
