/** Why a broker operation was refused; the service maps each to its Connect code. */
export type BrokerErrorCode =
  | "invalid_argument"
  | "not_found"
  | "already_exists"
  | "failed_precondition"
  | "resource_exhausted"
  | "unavailable"
  | "deadline_exceeded";

/** An operation refused with a reason a person can act on. Nothing was changed. */
export class BrokerError extends Error {
  readonly code: BrokerErrorCode;
  constructor(code: BrokerErrorCode, message: string) {
    super(message);
    this.name = "BrokerError";
    this.code = code;
  }
}
