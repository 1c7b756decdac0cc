import type { ServiceImpl } from "@connectrpc/connect";
import { defaultQueueSettings } from "@quartet/broker";
import type { BrokerAdminService } from "@quartet/proto/quartet/broker/v1/broker_pb";
import type { BrokerDeps } from "./broker-service.ts";
import { connectErrors, invalid } from "./limits.ts";

/** Implements the admin service; serve() guards it with the cluster credential. */
export function createAdminService(deps: BrokerDeps): ServiceImpl<typeof BrokerAdminService> {
  const { queues, logger } = deps;
  return {
    async createQueue(req) {
      const s = req.settings;
      const settings = {
        maxDeliveries: s?.maxDeliveries || defaultQueueSettings.maxDeliveries,
        ackDeadlineMs: s?.ackDeadlineMs || defaultQueueSettings.ackDeadlineMs,
        durable: s?.durable ?? false,
        maxLength: s?.maxLength || defaultQueueSettings.maxLength,
      };
      if (settings.maxDeliveries > 1000)
        throw invalid(
          "settings.max_deliveries",
          `${settings.maxDeliveries} is above the limit of 1000`,
        );
      if (settings.ackDeadlineMs < 100 || settings.ackDeadlineMs > 3_600_000) {
        throw invalid(
          "settings.ack_deadline_ms",
          `${settings.ackDeadlineMs} is outside 100 to 3600000`,
        );
      }
      if (settings.maxLength > 10_000_000)
        throw invalid(
          "settings.max_length",
          `${settings.maxLength} is above the limit of 10000000`,
        );
      const created = await connectErrors(() => queues.create(req.queue, settings));
      if (created) logger.info({ queue: req.queue, settings }, "queue created");
      return { created };
    },
    async deleteQueue(req) {
      await connectErrors(() => queues.delete(req.queue));
      logger.info({ queue: req.queue }, "queue deleted");
      return {};
    },
    async purgeQueue(req) {
      const purged = await connectErrors(() => queues.purge(req.queue));
      return { purged: BigInt(purged) };
    },
    async redriveDeadLetters(req) {
      const redriven = await connectErrors(() => queues.redrive(req.queue));
      return { redriven: BigInt(redriven) };
    },
  };
}
