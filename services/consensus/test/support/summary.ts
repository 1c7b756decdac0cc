import type { CommandResult } from "@quartet/proto/quartet/consensus/v1/internal_pb";
import type { KeyValue, ResponseOp } from "@quartet/proto/quartet/consensus/v1/kv_pb";

const dec = new TextDecoder();

/** A plain version of a key, as the reference model writes it too. */
export interface PlainKv {
  key: string;
  value: string;
  create: number;
  mod: number;
  version: number;
  lease: number;
}

export const plainKv = (kv: KeyValue): PlainKv => ({
  key: dec.decode(kv.key),
  value: dec.decode(kv.value),
  create: Number(kv.createRevision),
  mod: Number(kv.modRevision),
  version: Number(kv.version),
  lease: Number(kv.lease),
});

export const kvText = (kv: PlainKv | undefined): string =>
  kv === undefined
    ? "none"
    : `${kv.key}=${kv.value}@c${kv.create}m${kv.mod}v${kv.version}l${kv.lease}`;

/** A command result as one line, so the state machine's and the model's can be compared. */
export function summarize(r: CommandResult): string {
  const rev = `r${r.revision}`;
  const res = r.result;
  switch (res.case) {
    case "error":
      return `error ${res.value.code} ${rev}`;
    case "put":
      return `put ${rev} prev=${kvText(res.value.prevKv && plainKv(res.value.prevKv))}`;
    case "deleteRange":
      return `del ${rev} n=${res.value.deleted} prev=[${res.value.prevKvs.map((kv) => kvText(plainKv(kv)))}]`;
    case "txn":
      return `txn ${rev} ${res.value.succeeded} [${res.value.responses.map(opText).join(" ")}]`;
    case "compact":
      return `compact ${rev}`;
    case "leaseGrant":
      return `grant ${rev} ${res.value.id}/${res.value.ttl}`;
    case "leaseRevoke":
      return `revoke ${rev}`;
    case "leaseRenew":
      return `renew ${rev} ${res.value.id}/${res.value.ttl}`;
    case "expireLeases":
      return `expire ${rev} [${res.value.ids}]`;
    case "promoteLeases":
      return `promote ${rev} ${res.value.count}`;
    default:
      return `unknown ${rev}`;
  }
}

function opText(op: ResponseOp): string {
  const r = op.response;
  switch (r.case) {
    case "responsePut":
      return `put prev=${kvText(r.value.prevKv && plainKv(r.value.prevKv))}`;
    case "responseRange":
      return `range [${r.value.kvs.map((kv) => kvText(plainKv(kv)))}]`;
    case "responseDeleteRange":
      return `del n=${r.value.deleted}`;
    default:
      return "none";
  }
}
