import type { DescService } from "@bufbuild/protobuf";
import {
  type Client,
  Code,
  ConnectError,
  createClient,
  type Interceptor,
} from "@connectrpc/connect";
import type { NodeId } from "@quartet/raft";
import { createTelemetryTransport } from "@quartet/telemetry";

/** Set on a call one member forwards to another, so it is never forwarded twice. */
export const forwardedHeader = "quartet-forwarded-by";

/** Where a member is reached: the membership (it learns members added at run time). */
export interface AddressBook {
  get(id: NodeId): string | undefined;
}

/**
 * Clients of the other members' public services, for calls forwarded to the leader. They
 * carry the caller's trace context and remaining deadline (the telemetry transport takes
 * both from the handler's call context), so a Put sent to a follower shows as one trace:
 * client, follower, leader.
 */
export class ForwardingClients {
  private readonly self: NodeId;
  private readonly urls: AddressBook;
  private readonly clients = new Map<string, Client<DescService>>();

  constructor(self: NodeId, urls: AddressBook) {
    this.self = self;
    this.urls = urls;
  }

  /** A client of `service` on member `id`, and the headers a forwarded call carries. */
  to<S extends DescService>(
    service: S,
    id: NodeId,
  ): { client: Client<S>; headers: Record<string, string> } {
    const url = this.urls.get(id);
    if (url === undefined) throw new Error(`member ${id} has no known address`);
    const key = `${service.typeName} ${url}`;
    let client = this.clients.get(key) as Client<S> | undefined;
    if (client === undefined) {
      const transport = createTelemetryTransport({
        protocol: "grpc",
        baseUrl: url,
        interceptors: [leaderLostUnder(id)],
      });
      client = createClient(service, transport);
      this.clients.set(key, client as Client<DescService>);
    }
    return { client, headers: { [forwardedHeader]: String(this.self) } };
  }
}

/**
 * What a caller gets for a forwarded call (all are unary) that failed after it was sent.
 * Canceled that the caller did not ask for is the connection to the leader closing under the
 * call (the leader crashed or was cut off): the caller learns that it is worth retrying and
 * that the call may have taken effect, not a bare "stream closed". The leader's own answers,
 * and a connection it refused (Unavailable, the cause kept), pass through as they are.
 */
function leaderLostUnder(leader: NodeId): Interceptor {
  return (next) => async (req) => {
    try {
      return await next(req);
    } catch (error) {
      const e = ConnectError.from(error);
      if (e.code !== Code.Canceled || req.signal.aborted) throw error;
      throw new ConnectError(
        `the connection to the leader, member ${leader}, closed during the forwarded call (${e.rawMessage}): it may or may not have taken effect; read the state it changes (the key, the member list) before retrying a call that is not idempotent`,
        Code.Unavailable,
        undefined,
        undefined,
        error,
      );
    }
  };
}
