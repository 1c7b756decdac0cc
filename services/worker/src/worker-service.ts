import { create } from "@bufbuild/protobuf";
import {
  type CallOptions,
  type Client,
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
  type FanoutRequest,
  type FanoutResult,
  FanoutResultSchema,
  WatchResponseSchema,
  WorkerService,
} from "@quartet/proto/quartet/worker/v1/worker_pb";
import type { Logger } from "@quartet/server";
import { hashRounds, sliceRounds } from "./compute.ts";
import { applyMaxTimeout, sleep } from "./deadline.ts";
import { checkFanoutDepth, FANOUT_DEPTH_HEADER, fanoutDepthOf } from "./fanout-depth.ts";
import { injectFault, type StandingFault } from "./standing-fault.ts";
import { validateCompute, validateFanout, validateWatch, type WorkLimits } from "./validate.ts";

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
  /** Bounds on the work one call may demand. */
  limits: WorkLimits;
  /** The server's --max-timeout-ms, also applied to calls that came without a timeout. */
  maxTimeoutMs: number;
  /** The fault WorkerAdminService.SetFault set for calls that carry none of their own. */
  standing?: StandingFault;
}

/** The quartet.worker.v1.WorkerService implementation. */
export function createWorkerService(options: WorkerOptions): ServiceImpl<typeof WorkerService> {
  const { id, logger, limits, maxTimeoutMs } = options;
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
      else await options.standing?.apply(signal);
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
      validateCompute(req, limits);
      // A call that never yields to the event loop ends before any timer could fire, so the
      // server's maximum timeout is armed only for work that waits or runs in slices.
      const faulty = req.fault !== undefined || options.standing?.active === true;
      if (!faulty && req.iterations <= sliceRounds) return compute(req, ctx.signal);
      const time = applyMaxTimeout(ctx, maxTimeoutMs);
      return compute(req, time.signal).finally(time.release);
    },

    async fanout(req, ctx) {
      const depth = fanoutDepthOf(ctx.requestHeader);
      checkFanoutDepth(depth, limits.maxFanoutDepth);
      const peers = validateFanout(req, options.fanoutHosts, limits);
      const request = req.request!;
      const time = applyMaxTimeout(ctx, maxTimeoutMs);
      // Peers learn this call's remaining time even when its caller gave none.
      const callOptions = () => ({
        signal: time.signal,
        timeoutMs: Math.max(1, time.remainingMs()),
        headers: { [FANOUT_DEPTH_HEADER]: String(depth + 1) },
      });
      try {
        return { results: await callPeers(req, peers, request, callOptions) };
      } finally {
        time.release();
      }
    },

    async *watch(req, ctx) {
      validateWatch(req, limits);
      const time = applyMaxTimeout(ctx, maxTimeoutMs);
      try {
        let digest: string = id;
        for (let step = 1; step <= req.steps; step++) {
          if (step > 1 && req.stepDelayMs > 0) await sleep(req.stepDelayMs, time.signal);
          digest = await hashRounds(digest, req.iterationsPerStep, time.signal);
          yield create(WatchResponseSchema, { step, totalSteps: req.steps, digest });
        }
      } finally {
        time.release();
      }
    },
  };

  function callPeers(
    req: FanoutRequest,
    peers: URL[],
    request: ComputeRequest,
    callOptions: () => CallOptions,
  ): Promise<FanoutResult[]> {
    return Promise.all(
      peers.map(async (url, i): Promise<FanoutResult> => {
        const peer = req.peers[i]!;
        try {
          const response = await clientFor(url).compute(request, callOptions());
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
  }
}
