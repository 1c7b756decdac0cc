import { Code, ConnectError, type ServiceImpl } from "@connectrpc/connect";
import type { FaultService } from "@quartet/proto/quartet/consensus/v1/faults_pb";
import type { Logger } from "@quartet/server";

/** What the fault controls change: read by the peer transport's drop predicate. */
export class FaultSwitch {
  isolated = false;
}

export interface FaultDeps {
  faults: FaultSwitch;
  /** --fault-controls: off, every call is refused. */
  enabled: boolean;
  logger: Logger;
  /** Called after isolation changes (observers show it). */
  changed: () => void;
  /** Ends the process as a crash would; tests of the service alone replace it. */
  crash?: () => void;
}

/**
 * quartet.consensus.v1.FaultService: cut this member off from its peers and heal it, or crash
 * it, for demonstrations. Behind the cluster credential and --fault-controls.
 */
export function createFaultService(deps: FaultDeps): ServiceImpl<typeof FaultService> {
  const crash = deps.crash ?? (() => process.kill(process.pid, "SIGKILL"));
  const allowed = () => {
    if (!deps.enabled)
      throw new ConnectError(
        "fault controls are off on this member: start it with --fault-controls true (QUARTET_FAULT_CONTROLS=true)",
        Code.PermissionDenied,
      );
  };
  return {
    isolate(req) {
      allowed();
      if (deps.faults.isolated !== req.isolated) {
        deps.faults.isolated = req.isolated;
        deps.logger.warn(
          { isolated: req.isolated },
          req.isolated
            ? "fault control: cut off from peers"
            : "fault control: reconnected to peers",
        );
        deps.changed();
      }
      return { isolated: deps.faults.isolated };
    },
    crash() {
      allowed();
      deps.logger.warn("fault control: crashing on request");
      // Shortly after the answer is on its way, so the caller learns the call worked.
      setTimeout(crash, 50);
      return { pid: process.pid };
    },
  };
}
