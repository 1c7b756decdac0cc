import type { DescFile, DescMethod, DescService } from "@bufbuild/protobuf";
import { MethodOptions_IdempotencyLevel as MethodIdempotency } from "@bufbuild/protobuf/wkt";
import { file_quartet_broker_v1_broker } from "@quartet/proto/quartet/broker/v1/broker_pb";
import { file_quartet_consensus_v1_cluster } from "@quartet/proto/quartet/consensus/v1/cluster_pb";
import { file_quartet_consensus_v1_kv } from "@quartet/proto/quartet/consensus/v1/kv_pb";
import { file_quartet_consensus_v1_lease } from "@quartet/proto/quartet/consensus/v1/lease_pb";
import { file_quartet_consensus_v1_watch } from "@quartet/proto/quartet/consensus/v1/watch_pb";
import { file_quartet_worker_v1_worker } from "@quartet/proto/quartet/worker/v1/worker_pb";

/** Every Quartet API the gateway knows the shape of (for retries and the REST tier). */
export const files: DescFile[] = [
  file_quartet_worker_v1_worker,
  file_quartet_broker_v1_broker,
  file_quartet_consensus_v1_kv,
  file_quartet_consensus_v1_lease,
  file_quartet_consensus_v1_watch,
  file_quartet_consensus_v1_cluster,
];

export interface MethodInfo {
  readonly method: DescMethod;
  /** Its request is one message, so the gateway may hold it and send it again. */
  readonly singleRequest: boolean;
  /** Marked NO_SIDE_EFFECTS or IDEMPOTENT: safe to retry after it may have run. */
  readonly idempotent: boolean;
}

/** The methods of the known services by request path, `/package.Service/Method`. */
export function methodCatalog(): Map<string, MethodInfo> {
  const byPath = new Map<string, MethodInfo>();
  for (const file of files) {
    for (const service of file.services as DescService[]) {
      for (const method of service.methods) {
        byPath.set(`/${service.typeName}/${method.name}`, {
          method,
          singleRequest: method.methodKind === "unary" || method.methodKind === "server_streaming",
          idempotent:
            method.idempotency === MethodIdempotency.NO_SIDE_EFFECTS ||
            method.idempotency === MethodIdempotency.IDEMPOTENT,
        });
      }
    }
  }
  return byPath;
}
