import { Code, ConnectError, type ServiceImpl } from "@connectrpc/connect";
import type { WorkerAdminService } from "@quartet/proto/quartet/worker/v1/worker_pb";
import type { Logger } from "@quartet/server";
import type { StandingFault } from "./standing-fault.ts";
import { validateFault } from "./validate.ts";

export interface WorkerAdminOptions {
  standing: StandingFault;
  /** --fault-controls: off, SetFault is refused. */
  enabled: boolean;
  logger: Logger;
}

/** quartet.worker.v1.WorkerAdminService: a standing fault for demonstrations. */
export function createWorkerAdminService(
  options: WorkerAdminOptions,
): ServiceImpl<typeof WorkerAdminService> {
  const { standing, logger } = options;
  return {
    setFault(req) {
      if (!options.enabled)
        throw new ConnectError(
          "fault controls are off on this worker: start it with --fault-controls true (QUARTET_FAULT_CONTROLS=true)",
          Code.PermissionDenied,
        );
      if (req.fault) validateFault(req.fault, "fault.");
      standing.set(req.fault, req.seed);
      logger.warn(
        {
          delayMs: req.fault?.delayMs ?? 0,
          failCode: req.fault?.failCode ?? 0,
          failFraction: req.fault?.failFraction,
          seed: String(req.seed),
        },
        standing.active ? "fault control: standing fault set" : "fault control: fault cleared",
      );
      return { standing: standing.describe() };
    },
    getFault() {
      return { standing: standing.describe() };
    },
  };
}
