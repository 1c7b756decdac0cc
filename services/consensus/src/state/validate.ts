import { Code, ConnectError } from "@connectrpc/connect";
import type { Command } from "@quartet/proto/quartet/consensus/v1/internal_pb";
import type {
  Compare,
  DeleteRangeRequest,
  PutRequest,
  RangeRequest,
  RequestOp,
  TxnRequest,
} from "@quartet/proto/quartet/consensus/v1/kv_pb";
import { Compare_CompareResult } from "@quartet/proto/quartet/consensus/v1/kv_pb";
import { StateError } from "./errors.ts";
import { inRange, type KeyRange, keyRange, keyString } from "./keys.ts";
import { limits } from "./limits.ts";
import type { ConsensusStateMachine } from "./state-machine.ts";

/**
 * Checks a request before it is proposed, against the limits and the proposing member's
 * state, so a bad request is refused with an actionable message instead of taking a log
 * entry. (The state machine re-checks what can change meanwhile, e.g. a lease expiring.)
 * Throws ConnectError.
 */
export function validateCommand(cmd: Command, sm: ConsensusStateMachine): void {
  const op = cmd.op;
  switch (op.case) {
    case "put":
      validatePut(op.value, sm, "");
      return;
    case "deleteRange":
      validateDeleteRange(op.value, "");
      return;
    case "txn":
      validateTxn(op.value, sm);
      return;
    case "compact":
      wrap(() => {
        const rev = op.value.revision;
        if (rev <= 0n) throw invalid(`compact revision ${rev} must be positive`);
        if (rev <= sm.compactRevision)
          throw new StateError(
            Code.OutOfRange,
            `revision ${rev} has been compacted already (compacted revision ${sm.compactRevision}): compact at a later revision`,
          );
        sm.store.readRevision(rev);
      });
      return;
    case "leaseGrant": {
      const { ttl, id } = op.value;
      if (ttl < 1n || ttl > BigInt(limits.maxLeaseTtlSeconds))
        throw invalid(`lease ttl ${ttl} must be 1 to ${limits.maxLeaseTtlSeconds} seconds`);
      if (id < 0n) throw invalid(`lease id ${id} must be positive, or 0 to let the cluster choose`);
      if (id > 0n && sm.lease(id) !== undefined)
        throw new ConnectError(
          `lease ${id} already exists: choose another id or 0 to let the cluster choose`,
          Code.AlreadyExists,
        );
      return;
    }
    case "leaseRevoke":
    case "leaseRenew":
      validateLease(op.value.id, sm, "");
      return;
    case "expireLeases":
    case "promoteLeases":
      return;
    default:
      throw invalid("empty command: set one operation");
  }
}

/** Checks a read (outside the log) against the limits and the member's revisions. */
export function validateRange(req: RangeRequest, sm: ConsensusStateMachine, at = ""): void {
  validateKeyRange(req.key, req.rangeEnd, at);
  if (req.limit < 0n) throw invalid(`${at}limit ${req.limit} must be >= 0 (0: no limit)`);
  wrap(() => sm.store.readRevision(req.revision));
}

function validatePut(req: PutRequest, sm: ConsensusStateMachine, at: string): void {
  validateKey(req.key, at);
  if (req.value.byteLength > limits.maxValueBytes)
    throw invalid(
      `${at}value is ${req.value.byteLength} bytes, over the limit of ${limits.maxValueBytes} bytes (1.5 MiB): store large values elsewhere and put a reference`,
    );
  if (req.lease !== 0n) validateLease(req.lease, sm, at);
}

function validateDeleteRange(req: DeleteRangeRequest, at: string): void {
  validateKeyRange(req.key, req.rangeEnd, at);
}

function validateTxn(req: TxnRequest, sm: ConsensusStateMachine): void {
  const ops = Math.max(req.compare.length, req.success.length, req.failure.length);
  if (ops > limits.maxTxnOps)
    throw invalid(
      `txn has ${ops} operations in one list, over the limit of ${limits.maxTxnOps}: split it into several transactions`,
    );
  for (const [i, c] of req.compare.entries()) validateCompare(c, `compare[${i}]: `);
  validateBranch(req.success, sm, "success");
  validateBranch(req.failure, sm, "failure");
}

function validateCompare(c: Compare, at: string): void {
  validateKey(c.key, at);
  if (c.result === Compare_CompareResult.UNSPECIFIED)
    throw invalid(`${at}result is unset: use EQUAL, GREATER, LESS or NOT_EQUAL`);
  if (c.targetUnion.case === undefined)
    throw invalid(`${at}no target: set version, create_revision, mod_revision, value or lease`);
}

function validateBranch(ops: RequestOp[], sm: ConsensusStateMachine, name: string): void {
  const puts = new Set<string>();
  const deletes: KeyRange[] = [];
  for (const [i, op] of ops.entries()) {
    const at = `${name}[${i}]: `;
    const r = op.request;
    switch (r.case) {
      case "requestRange":
        validateRange(r.value, sm, at);
        break;
      case "requestPut": {
        validatePut(r.value, sm, at);
        const k = keyString(r.value.key);
        if (puts.has(k)) throw invalid(`${at}puts a key the same branch already puts`);
        puts.add(k);
        break;
      }
      case "requestDeleteRange":
        validateDeleteRange(r.value, at);
        deletes.push(keyRange(r.value.key, r.value.rangeEnd));
        break;
      default:
        throw invalid(
          `${at}empty operation: set request_range, request_put or request_delete_range`,
        );
    }
  }
  for (const k of puts)
    if (deletes.some((d) => inRange(d, k)))
      throw invalid(`${name}: a key is both put and deleted in the same branch`);
}

function validateKeyRange(key: Uint8Array, rangeEnd: Uint8Array, at: string): void {
  validateKey(key, at);
  if (rangeEnd.byteLength > limits.maxKeyBytes)
    throw invalid(`${at}range_end is over the limit of ${limits.maxKeyBytes} bytes`);
  const r = keyRange(key, rangeEnd);
  if (typeof r.end === "string" && r.end <= r.start)
    throw invalid(
      `${at}range_end sorts at or before key: give a larger range_end, "\\0" for every key from key on, or none for the single key`,
    );
}

function validateKey(key: Uint8Array, at: string): void {
  if (key.byteLength === 0)
    throw invalid(`${at}key is empty: give a key of 1 to ${limits.maxKeyBytes} bytes`);
  if (key.byteLength > limits.maxKeyBytes)
    throw invalid(
      `${at}key is ${key.byteLength} bytes, over the limit of ${limits.maxKeyBytes} bytes`,
    );
}

function validateLease(id: bigint, sm: ConsensusStateMachine, at: string): void {
  if (sm.lease(id) === undefined)
    throw new ConnectError(
      `${at}lease ${id} not found (revoked or expired): grant a new lease with LeaseGrant`,
      Code.NotFound,
    );
}

function invalid(message: string): ConnectError {
  return new ConnectError(message, Code.InvalidArgument);
}

/** Runs a state check, turning its StateError into the ConnectError the client gets. */
function wrap(fn: () => void): void {
  try {
    fn();
  } catch (err) {
    if (err instanceof StateError) throw new ConnectError(err.message, err.code);
    throw err;
  }
}
