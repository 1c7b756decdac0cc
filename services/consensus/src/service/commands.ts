import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { BinaryReader, WireType } from "@bufbuild/protobuf/wire";
import { Code, ConnectError, type HandlerContext } from "@connectrpc/connect";
import {
  type Command,
  type CommandResult,
  CommandSchema,
} from "@quartet/proto/quartet/consensus/v1/internal_pb";
import {
  type PutRequest,
  type ResponseHeader,
  ResponseHeaderSchema,
} from "@quartet/proto/quartet/consensus/v1/kv_pb";
import type { RaftNode } from "../node/raft-node.ts";
import { StateError } from "../state/errors.ts";
import {
  boolFieldSize,
  bytesFieldSize,
  delimitedSize,
  int64FieldSize,
  putBoolField,
  putBytesField,
  putDelimited,
  putInt64Field,
} from "../state/wire.ts";
import type { LeaderRouter } from "./leader-router.ts";

type Op = NonNullable<Command["op"]["case"]>;

/**
 * Turns a request into a Command in the Raft log and the state machine's result back into
 * the response, with the header every response carries. Time enters commands here, as the
 * proposing member's clock (`now_ms`), so applying them stays deterministic.
 */
export class CommandWriter {
  private readonly clusterId: bigint;
  private readonly node: RaftNode;
  private readonly router: LeaderRouter;
  private readonly nowMs: () => number;
  private readonly validate: (command: Command) => void;

  constructor(options: {
    clusterId: bigint;
    node: RaftNode;
    router: LeaderRouter;
    /** Refuses a bad command before it takes a log entry (throws a ConnectError). */
    validate: (command: Command) => void;
    nowMs?: () => number;
  }) {
    this.clusterId = options.clusterId;
    this.node = options.node;
    this.router = options.router;
    this.validate = options.validate;
    this.nowMs = options.nowMs ?? Date.now;
  }

  header(revision: bigint): ResponseHeader {
    return create(ResponseHeaderSchema, {
      clusterId: this.clusterId,
      memberId: BigInt(this.node.id),
      revision,
      raftTerm: BigInt(this.node.term()),
    });
  }

  /**
   * Proposes `value` as the `op` command and answers with the state machine's result (and a
   * header); a member that does not lead forwards the call with `forward` instead.
   */
  write<R>(
    ctx: HandlerContext,
    op: Op,
    value: unknown,
    forward: (leader: number) => Promise<R>,
  ): Promise<R> {
    const command = this.command(op, value);
    return this.router.write(
      ctx,
      encodeCommand(command),
      (r) => {
        const { value: res, revision } = resultOf(r as CommandResult, op);
        return { ...(res as object), header: this.header(revision) } as R;
      },
      forward,
      () => this.validate(command),
    );
  }

  /** A command of the member's own (lease expiry, promotion): proposed only if it leads. */
  async propose(op: Op, value: unknown): Promise<CommandResult> {
    return (await this.node.propose(encodeCommand(this.command(op, value)))) as CommandResult;
  }

  private command(op: Op, value: unknown): Command {
    return create(CommandSchema, {
      nowMs: BigInt(this.nowMs()),
      op: { case: op, value } as Command["op"],
    });
  }
}

/**
 * A Command as its log entry's bytes. A put, the command of nearly every write, is written
 * by hand (state/wire.ts says why: 3.4 us through toBinary, 0.25 us here); anything else, or
 * a put that carries fields this version does not know, goes through toBinary. Both give the
 * same bytes (test/commands.test.ts).
 */
export function encodeCommand(command: Command): Uint8Array {
  const op = command.op;
  if (op.case !== "put" || op.value.$unknown !== undefined || command.$unknown !== undefined) {
    return toBinary(CommandSchema, command);
  }
  const put = op.value;
  const putSize =
    bytesFieldSize(put.key) +
    bytesFieldSize(put.value) +
    int64FieldSize(put.lease) +
    boolFieldSize(put.prevKv);
  const size = int64FieldSize(command.nowMs) + delimitedSize(putSize);
  // From Node's pool: a put's entry is small and lives while Raft keeps it in memory.
  const pooled = Buffer.allocUnsafe(size);
  const out = new Uint8Array(pooled.buffer, pooled.byteOffset, size);
  let at = putInt64Field(out, 0, 1, command.nowMs);
  at = putDelimited(out, at, putField, putSize);
  at = putBytesField(out, at, 1, put.key);
  at = putBytesField(out, at, 2, put.value);
  at = putInt64Field(out, at, 3, put.lease);
  putBoolField(out, at, 4, put.prevKv);
  return out;
}

/** Command.put's field number. */
const putField = 10;

/**
 * A log entry's Command, as `fromBinary` reads it. A put (every member applies each one) is
 * read by hand into the message's plain object: 0.6 us of `fromBinary` per put per member.
 * Anything else, or a put with a field this version does not know, goes through `fromBinary`
 * (test/commands.test.ts compares the two).
 */
export function decodeCommand(data: Uint8Array): Command {
  const r = new BinaryReader(data);
  let nowMs = 0n;
  let put: PutRequest | undefined;
  while (r.pos < r.len) {
    const [field, wireType] = r.tag();
    if (field === 1 && wireType === WireType.Varint) {
      nowMs = BigInt(r.int64());
      continue;
    }
    const read =
      field === putField && wireType === WireType.LengthDelimited && put === undefined
        ? readPut(r, r.uint32() + r.pos)
        : null;
    if (read === null) return fromBinary(CommandSchema, data);
    put = read;
  }
  if (put === undefined) return fromBinary(CommandSchema, data);
  return { $typeName: "quartet.consensus.v1.Command", nowMs, op: { case: "put", value: put } };
}

/** A PutRequest ending at `end`; null when it holds a field this does not read. */
function readPut(r: BinaryReader, end: number): PutRequest | null {
  const put: PutRequest = {
    $typeName: "quartet.consensus.v1.PutRequest",
    key: empty,
    value: empty,
    lease: 0n,
    prevKv: false,
  };
  while (r.pos < end) {
    const [field, wireType] = r.tag();
    if (field === 1 && wireType === WireType.LengthDelimited) put.key = r.bytes();
    else if (field === 2 && wireType === WireType.LengthDelimited) put.value = r.bytes();
    else if (field === 3 && wireType === WireType.Varint) put.lease = BigInt(r.int64());
    else if (field === 4 && wireType === WireType.Varint) put.prevKv = r.bool();
    else return null;
  }
  return r.pos === end ? put : null;
}

const empty = new Uint8Array(0);

/** The value of the result's `op` case, or the refusal the state machine recorded. */
function resultOf(r: CommandResult, op: Op): { value: unknown; revision: bigint } {
  const result = r.result;
  if (result.case === "error") {
    throw new ConnectError(result.value.message, result.value.code as Code);
  }
  if (result.case !== op) {
    throw new ConnectError(`the state machine answered ${result.case} to ${op}`, Code.Internal);
  }
  return { value: result.value, revision: r.revision };
}

/** A read refused by the state machine, as the Connect error the caller gets. */
export function asConnectError(e: unknown): unknown {
  return e instanceof StateError ? new ConnectError(e.message, e.code) : e;
}
