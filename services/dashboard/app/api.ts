// One connect-web transport to the gateway that served this page (same origin), typed clients
// from the generated code, and the credential on every call when the page holds one.
import type { DescService } from "@bufbuild/protobuf";
import { type Client, createClient, type Interceptor, type Transport } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-web";
import { BalancerAdminService } from "@quartet/proto/quartet/balancer/v1/admin_pb";
import { BrokerService } from "@quartet/proto/quartet/broker/v1/broker_pb";
import { MaintenanceService } from "@quartet/proto/quartet/consensus/v1/cluster_pb";
import { KVService } from "@quartet/proto/quartet/consensus/v1/kv_pb";
import { SupervisorService } from "@quartet/proto/quartet/suite/v1/supervisor_pb";
import { WorkerService } from "@quartet/proto/quartet/worker/v1/worker_pb";
import { token } from "./auth.ts";

const credential: Interceptor = (next) => (req) => {
  const t = token();
  if (t && !req.header.has("authorization")) req.header.set("authorization", `Bearer ${t}`);
  return next(req);
};

const transports = new Map<string, Transport>();

/**
 * A client of one instance (a given Raft member, a given worker) at its own base URL, for the
 * calls that must reach that instance rather than the one the gateway's picker would choose.
 * Every service allows CORS from local pages, so the page served on 8080 may call 7001.
 */
export function clientAt<S extends DescService>(service: S, baseUrl: string): Client<S> {
  let t = transports.get(baseUrl);
  if (!t) {
    t = createConnectTransport({ baseUrl, interceptors: [credential] });
    transports.set(baseUrl, t);
  }
  return createClient(service, t);
}

/** Through the gateway that served this page. */
const client = <S extends DescService>(service: S): Client<S> => clientAt(service, location.origin);

export const api = {
  gateway: client(BalancerAdminService),
  broker: client(BrokerService),
  kv: client(KVService),
  maintenance: client(MaintenanceService),
  supervisor: client(SupervisorService),
  worker: client(WorkerService),
};
