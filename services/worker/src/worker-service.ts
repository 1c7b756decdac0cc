import { setTimeout as delay } from "node:timers/promises";
import { create } from "@bufbuild/protobuf";
import {
  type Client,
  type Code,
  ConnectError,
  createClient,
  type ServiceImpl,
  type Transport,
} from "@connectrpc/connect";
import { codeToString } from "@connectrpc/connect/protocol-connect";
import type { Random } from "@quartet/determinism";
import {
  type ComputeRequest,
  type ComputeResponse,
  ComputeResponseSchema,
  type FanoutResult,
  FanoutResultSchema,
  type Fault,
  WatchResponseSchema,
  WorkerService,
} from "@quartet/proto/quartet/worker/v1/worker_pb";
import type { Logger } from "@quartet/server";
import { hashRounds } from "./compute.ts";
import { validateCompute, validateFanout, validateWatch } from "./validate.ts";

export interface WorkerOptions {
  /** Reported in every ComputeResponse, so callers see who answered. */
  id: string;
  logger: Logger;
  /** Uniform in [0, 1); seeded, so fault fractions replay. */
  random: Random;
  /** Hosts Fanout may call. */
  fanoutHosts: ReadonlySet<string>;
  /** A transport to a peer's base URL that propagates trace context and deadlines. */
  transportFor: (baseUrl: string) => Transport;
}

/** The quartet.worker.v1.WorkerService implementation. */
export function createWorkerService(options: WorkerOptions): ServiceImpl<typeof WorkerService> {
  const { id, logger } = options;
  const clients = new Map<string, Client<typeof WorkerService>>();
  const clientFor = (url: URL) => {
    const key = url.origin;
    let client = clients.get(key);
    if (!client) {
      client = createClient(WorkerService, options.transportFor(key));
      clients.set(key, client);
    }
    return client;
  };

  const compute = async (req: ComputeRequest, signal: AbortSignal): Promise<ComputeResponse> => {
    try {
      if (req.fault) await injectFault(req.fault, options.random, signal);
      const digest = await hashRounds(req.input, req.iterations, signal);
      return create(ComputeResponseSchema, { digest, iterations: req.iterations, workerId: id });
    } catch (e) {
      // Logged so tests and operators can see a cancellation reach this handler.
      if (signal.aborted) logger.info({ reason: String(signal.reason) }, "compute aborted");
      throw e;
    }
  };

  return {
    // Not async: one promise per call fewer (validateCompute's throw still reaches the
    // caller as an error, since connect awaits the handler inside its own async function).
    compute(req, ctx) {
      validateCompute(req);
      return compute(req, ctx.signal);
    },

    async fanout(req, ctx) {
      const peers = validateFanout(req, options.fanoutHosts);
      const request = req.request!;
      const results = await Promise.all(
        peers.map(async (url, i): Promise<FanoutResult> => {
          const peer = req.peers[i]!;
          try {
            const response = await clientFor(url).compute(request, { signal: ctx.signal });
            return create(FanoutResultSchema, {
              peer,
              outcome: { case: "response", value: response },
            });
          } catch (e) {
            const err = ConnectError.from(e);
            if (!req.tolerateFailures) {
              throw new ConnectError(
                `peer ${peer}: ${err.rawMessage}`,
                err.code,
                undefined,
                undefined,
                err,
              );
            }
            return create(FanoutResultSchema, {
              peer,
              outcome: {
                case: "error",
                value: { code: codeToString(err.code), message: err.rawMessage },
              },
            });
          }
        }),
      );
      return { results };
    },

    async *watch(req, ctx) {
      validateWatch(req);
      let digest: string = id;
      for (let step = 1; step <= req.steps; step++) {
        if (step > 1 && req.stepDelayMs > 0)
          await delay(req.stepDelayMs, undefined, { signal: ctx.signal });
        digest = await hashRounds(digest, req.iterationsPerStep, ctx.signal);
        yield create(WatchResponseSchema, { step, totalSteps: req.steps, digest });
      }
    },
  };
}

async function injectFault(fault: Fault, random: Random, signal: AbortSignal): Promise<void> {
  if (fault.delayMs > 0) await delay(fault.delayMs, undefined, { signal });
  if (fault.failCode === 0) return;
  if (fault.failFraction !== undefined && random() >= fault.failFraction) return;
  throw new ConnectError(fault.failMessage || "injected fault", fault.failCode as number as Code);
}
