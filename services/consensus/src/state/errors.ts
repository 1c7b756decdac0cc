import { Code } from "@connectrpc/connect";

/**
 * A request the state machine refuses, with the Connect code the client gets. Thrown by reads
 * and by validation; applying a command turns it into a CommandError result instead, so every
 * replica records the same outcome.
 */
export class StateError extends Error {
  readonly code: Code;

  constructor(code: Code, message: string) {
    super(message);
    this.code = code;
    this.name = "StateError";
  }
}

export const compactedError = (rev: bigint, compacted: bigint) =>
  new StateError(
    Code.OutOfRange,
    `revision ${rev} has been compacted (compacted revision ${compacted}): read at ${compacted} or later`,
  );

export const futureRevisionError = (rev: bigint, current: bigint) =>
  new StateError(
    Code.OutOfRange,
    `revision ${rev} is a future revision (current revision ${current}): read at ${current} or earlier`,
  );

export const leaseNotFoundError = (id: bigint) =>
  new StateError(
    Code.NotFound,
    `lease ${id} not found (revoked or expired): grant a new lease with LeaseGrant`,
  );
