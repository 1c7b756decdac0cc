import type { MessageInitShape } from "@bufbuild/protobuf";
import type { Client } from "@connectrpc/connect";
import type {
  KVService,
  RangeRequestSchema,
  RangeResponse,
} from "@quartet/proto/quartet/consensus/v1/kv_pb";
import type { LeaseService } from "@quartet/proto/quartet/consensus/v1/lease_pb";
import type { Event } from "@quartet/proto/quartet/consensus/v1/watch_pb";

/** The services of one consensus member the registry calls. */
export interface RegistryMember {
  kv: Client<typeof KVService>;
  lease: Client<typeof LeaseService>;
}

/**
 * What the registry needs of a consensus client: `ConsensusClient` from
 * `@quartet/consensus-service/client` is one. Described here rather than imported, so the
 * consensus service can register itself with this package without a dependency cycle.
 */
export interface RegistryClient {
  /** A read retried on other members when one cannot answer. */
  range(
    req: MessageInitShape<typeof RangeRequestSchema>,
    signal?: AbortSignal,
  ): Promise<RangeResponse>;
  /** Events of [key, rangeEnd) from startRevision, once each and in order, across failures. */
  watch(
    req: { key: Uint8Array; rangeEnd?: Uint8Array; startRevision?: bigint },
    signal?: AbortSignal,
  ): AsyncIterable<Event>;
  /** Runs a call safe to repeat on members in turn until one answers. */
  retrying<R>(call: (m: RegistryMember) => Promise<R>, signal?: AbortSignal): Promise<R>;
  /** Renews a lease every `everyMs` until `signal` aborts; rejects when it cannot. */
  keepAlive(id: bigint, everyMs: number, signal: AbortSignal): Promise<void>;
}

/** Makes a client of the consensus members at these base URLs. */
export type ConnectRegistry = (endpoints: string[]) => RegistryClient;
