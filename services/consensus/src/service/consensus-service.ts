import { ClusterService, MaintenanceService } from "@quartet/proto/quartet/consensus/v1/cluster_pb";
import { FaultService } from "@quartet/proto/quartet/consensus/v1/faults_pb";
import { KVService } from "@quartet/proto/quartet/consensus/v1/kv_pb";
import { LeaseService } from "@quartet/proto/quartet/consensus/v1/lease_pb";
import { ObserveService } from "@quartet/proto/quartet/consensus/v1/observe_pb";
import { WatchService } from "@quartet/proto/quartet/consensus/v1/watch_pb";
import type { NodeId } from "@quartet/raft";
import type { Logger } from "@quartet/server";
import type { ReplicatedService } from "../node/member.ts";
import { validateCommand } from "../state/validate.ts";
import { createClusterService } from "./cluster-service.ts";
import { CommandWriter } from "./commands.ts";
import { createFaultService, FaultSwitch } from "./fault-service.ts";
import { ForwardingClients } from "./forwarding.ts";
import { createKvService } from "./kv-service.ts";
import { LeaderRouter } from "./leader-router.ts";
import { LeaseKeeper } from "./lease-keeper.ts";
import { createLeaseService } from "./lease-service.ts";
import { createMaintenanceService } from "./maintenance-service.ts";
import { createObserveService } from "./observe-service.ts";
import { RaftObserver } from "./raft-observer.ts";
import { ReplicatedState } from "./replicated-state.ts";
import { WatchHub } from "./watch-hub.ts";
import { defaultMaxWatchesPerClient, WatchLimits } from "./watch-limits.ts";
import { createWatchService } from "./watch-service.ts";

export interface ConsensusServiceOptions {
  clusterId: bigint;
  self: NodeId;
  logger: Logger;
  /** The member's data directory (Status reports its size). */
  dataDir: string;
  /** Watch streams open at once per client (--max-watches-per-client). */
  maxWatchesPerClient?: number;
  /** The cluster credential: its holders may name their clients (quartet-client-id). */
  clusterToken?: string;
  /** --fault-controls: FaultService may isolate or crash this member. */
  faultControls?: boolean;
}

/** The consensus service's replicated state and public RPCs, for startMember. */
export function createConsensusService(options: ConsensusServiceOptions): ReplicatedService {
  const hub = new WatchHub();
  const state = new ReplicatedState(hub);
  let router: LeaderRouter | undefined;
  let leases: LeaseKeeper | undefined;
  const observer = new RaftObserver();
  const faults = new FaultSwitch();
  const adminServices = [MaintenanceService, ClusterService, ObserveService, FaultService];
  return {
    stateMachine: state,
    routes(r, node, membership) {
      const forwarding = new ForwardingClients(options.self, membership);
      router = new LeaderRouter(node);
      const writer = new CommandWriter({
        clusterId: options.clusterId,
        node,
        router,
        validate: (command) => validateCommand(command, state.current),
      });
      leases = new LeaseKeeper({ writer, state, logger: options.logger });
      const deps = { writer, router, state, forwarding };
      r.service(KVService, createKvService(deps));
      r.service(LeaseService, createLeaseService(deps));
      const limits = new WatchLimits({
        maxPerClient: options.maxWatchesPerClient ?? defaultMaxWatchesPerClient,
        clusterToken: options.clusterToken,
      });
      r.service(WatchService, createWatchService({ writer, router, state, hub, limits }));
      const admin = { ...deps, node, dataDir: options.dataDir };
      r.service(MaintenanceService, createMaintenanceService(admin));
      r.service(ClusterService, createClusterService({ ...deps, node, membership }));
      const isolated = () => faults.isolated;
      r.service(ObserveService, createObserveService({ node, observer, isolated }));
      r.service(
        FaultService,
        createFaultService({
          faults,
          enabled: options.faultControls ?? false,
          logger: options.logger,
          changed: () => observer.changed(),
        }),
      );
    },
    protects: (procedure) => adminServices.some((s) => procedure.startsWith(`/${s.typeName}/`)),
    onReady: () => observer.changed(),
    isolated: () => faults.isolated,
    onRoleChange(status) {
      router?.leaderChanged();
      leases?.roleChanged(status.state === "leader");
    },
    close() {
      leases?.stop();
    },
  };
}
