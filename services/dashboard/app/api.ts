// One connect-web transport to the gateway that served this page (same origin), typed clients
// from the generated code, and the credential on every call when the page holds one.
import type { DescService } from "@bufbuild/protobuf";
import { type Client, createClient, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-web";
import { BalancerAdminService } from "@quartet/proto/quartet/balancer/v1/admin_pb";
import { BrokerService } from "@quartet/proto/quartet/broker/v1/broker_pb";
import { ClusterService, MaintenanceService } from "@quartet/proto/quartet/consensus/v1/cluster_pb";
import { FaultService } from "@quartet/proto/quartet/consensus/v1/faults_pb";
import { KVService } from "@quartet/proto/quartet/consensus/v1/kv_pb";
import { ObserveService } from "@quartet/proto/quartet/consensus/v1/observe_pb";
import { WatchService } from "@quartet/proto/quartet/consensus/v1/watch_pb";
import { SupervisorService } from "@quartet/proto/quartet/suite/v1/supervisor_pb";
import { WorkerAdminService, WorkerService } from "@quartet/proto/quartet/worker/v1/worker_pb";
import { token } from "./auth.ts";

/**
 * The gateway header that sends a call to one endpoint of its route (a given consensus member,
 * a given worker) instead of the one its picker would choose.
 */
export const endpointHeader = "quartet-endpoint";

const credential: Interceptor = (next) => (req) => {
  const t = token();
  if (t && !req.header.has("authorization")) req.header.set("authorization", `Bearer ${t}`);
  return next(req);
};

const transport = createConnectTransport({
  baseUrl: location.origin,
  interceptors: [credential],
});

const client = <S extends DescService>(service: S): Client<S> => createClient(service, transport);

export const api = {
  gateway: client(BalancerAdminService),
  broker: client(BrokerService),
  kv: client(KVService),
  watch: client(WatchService),
  cluster: client(ClusterService),
  maintenance: client(MaintenanceService),
  observe: client(ObserveService),
  faults: client(FaultService),
  supervisor: client(SupervisorService),
  worker: client(WorkerService),
  workerAdmin: client(WorkerAdminService),
};

/** Call options that address one endpoint (by its base URL) and carry a trace. */
export function at(
  endpoint: string,
  extra: { headers?: Record<string, string>; signal?: AbortSignal } = {},
) {
  return { ...extra, headers: { ...extra.headers, [endpointHeader]: endpoint } };
}
