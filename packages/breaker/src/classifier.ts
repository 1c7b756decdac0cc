import { Code, ConnectError } from "@connectrpc/connect";

/**
 * What a call's error says about the guarded dependency:
 * - `"failure"`: it is unhealthy; counts towards tripping, and a half-open probe reopens;
 * - `"success"`: it answered properly, with an error that is the caller's business (a bad
 *   argument, a missing key); counts as a success;
 * - `"ignore"`: it says nothing either way (the caller cancelled); not counted at all.
 */
export type Outcome = "failure" | "success" | "ignore";

/** Classifies an error thrown or rejected by a guarded call. */
export type Classifier = (error: unknown) => Outcome;

/** Connect codes that mean the dependency is unhealthy. */
export const failureCodes: ReadonlySet<Code> = new Set([
  Code.Unavailable,
  Code.DeadlineExceeded,
  Code.ResourceExhausted,
  Code.Internal,
  Code.Unknown,
  Code.Aborted,
  Code.DataLoss,
]);

const outcomeByCode: Outcome[] = [];
for (const name of Object.keys(Code)) {
  const code = Code[name as keyof typeof Code];
  if (typeof code === "number")
    outcomeByCode[code] = failureCodes.has(code) ? "failure" : "success";
}
// The caller gave up; the dependency may be fine or not.
outcomeByCode[Code.Canceled] = "ignore";

/**
 * The default classifier. Connect errors count by code: Unavailable, DeadlineExceeded,
 * ResourceExhausted, Internal, Unknown, Aborted and DataLoss are failures; InvalidArgument,
 * NotFound, AlreadyExists, PermissionDenied, Unauthenticated, FailedPrecondition, OutOfRange
 * and Unimplemented are answers (successes); Canceled is ignored. Other errors: an
 * `AbortError` is ignored like Canceled, a `TimeoutError` (from `AbortSignal.timeout`) is a
 * failure like DeadlineExceeded, and anything else is a failure like Unknown.
 */
export const connectClassifier: Classifier = (error) => {
  if (error instanceof ConnectError) return outcomeByCode[error.code] ?? "failure";
  if (error instanceof Error && error.name === "AbortError") return "ignore";
  return "failure";
};
