import { setTimeout as delay } from "node:timers/promises";
import type { ConnectRouter } from "@connectrpc/connect";
import { WorkerService } from "@quartet/proto/quartet/worker/v1/worker_pb";
import { pino } from "pino";
import { type ServeOptions, type Server, serve } from "../src/index.ts";

/** A small WorkerService: Compute echoes the input as the digest after fault.delay_ms. */
export function testRoutes(router: ConnectRouter): void {
  router.service(WorkerService, {
    async compute(req, ctx) {
      if (req.fault?.delayMs) await delay(req.fault.delayMs, undefined, { signal: ctx.signal });
      return { digest: req.input, iterations: req.iterations, workerId: "test" };
    },
    async *watch(req) {
      for (let step = 1; step <= req.steps; step++) yield { step, totalSteps: req.steps };
    },
  });
}

/** serve() on a free loopback port with test routes and silent logs. */
export function serveForTest(options: Partial<ServeOptions> = {}): Promise<Server> {
  return serve({ name: "test", routes: testRoutes, logger: pino({ level: "silent" }), ...options });
}
