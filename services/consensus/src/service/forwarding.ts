import type { DescService } from "@bufbuild/protobuf";
import { type Client, createClient } from "@connectrpc/connect";
import type { NodeId } from "@quartet/raft";
import { createTelemetryTransport } from "@quartet/telemetry";
import { forwardedHeader } from "./leader-router.ts";

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
      client = createClient(service, createTelemetryTransport({ protocol: "grpc", baseUrl: url }));
      this.clients.set(key, client as Client<DescService>);
    }
    return { client, headers: { [forwardedHeader]: String(this.self) } };
  }
}
