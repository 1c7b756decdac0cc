import type { CheckResult } from "./check.ts";
import type { Model, Operation } from "./model.ts";

/** A readable account of a failed check: the part with no linearization, and how far it got. */
export function describeFailure<S, I, O>(model: Model<S, I, O>, result: CheckResult<I, O>): string {
  if (result.outcome === "ok") return "linearizable";
  if (result.outcome === "unknown") return `undecided: ${result.reason}`;
  const line = (op: Operation<I, O>) =>
    model.describe ? model.describe(op) : JSON.stringify({ ...op, return: String(op.return) });
  const placed = new Set(result.longest);
  return [
    `not linearizable: ${result.partition.length} operations of one part, of which at most ${result.longest.length} can be ordered legally`,
    "longest legal order:",
    ...result.longest.map((op) => `  ${line(op)}`),
    "could not be placed after it:",
    ...result.partition.filter((op) => !placed.has(op)).map((op) => `  ${line(op)}`),
  ].join("\n");
}
