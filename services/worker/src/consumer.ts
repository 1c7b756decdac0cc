import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError, createHandlerContext, type ServiceImpl } from "@connectrpc/connect";
import {
  BrokerClient,
  processMessage,
  type ReceivedJob,
  type StreamPublisher,
} from "@quartet/broker-service/client";
import {
  ComputeRequestSchema,
  ComputeResponseSchema,
  WorkerService,
} from "@quartet/proto/quartet/worker/v1/worker_pb";
import type { Logger } from "@quartet/server";

/** Header naming the subject a job's result is published to. */
export const RESULT_SUBJECT_HEADER = "quartet-result-to";
/** Headers of an error reply to a request. */
export const ERROR_CODE_HEADER = "quartet-error-code";
export const ERROR_MESSAGE_HEADER = "quartet-error-message";

export interface ConsumerRoleOptions {
  brokerUrl: string;
  /** Work queue to take ComputeRequest jobs from. */
  queue?: string;
  /** Subject to answer ComputeRequest requests on (in queue group "workers"). */
  requestSubject?: string;
  /** Credit window on the queue. */
  maxInFlight: number;
  /** "stall" takes jobs and never finishes them: a hung worker, for demos and tests. */
  fault: "none" | "stall";
  /**
   * While the broker cannot be reached, retries log at debug level; after this long without
   * it, one warning.
   */
  warnAfterMs: number;
  workerId: string;
  worker: ServiceImpl<typeof WorkerService>;
  logger: Logger;
}

/**
 * The worker's consumer role: takes ComputeRequest jobs from a work queue (ack on success,
 * nack on failure; the result goes to the job's `quartet-result-to` subject if set) and
 * answers ComputeRequest requests on a subject. Reconnects with backoff while the broker is
 * away. Returns a function that stops it.
 */
export function startConsumerRole(options: ConsumerRoleOptions): () => void {
  const { logger } = options;
  const stop = new AbortController();
  const client = new BrokerClient({ baseUrl: options.brokerUrl, clientId: options.workerId });
  const replies = new ReplyBatcher(client, logger);
  const compute = async (payload: Uint8Array, signal: AbortSignal) => {
    const req = fromBinary(ComputeRequestSchema, payload);
    // The handler validates the request against the worker's limits and, as a job carries
    // no timeout, ends it at the server's --max-timeout-ms.
    const ctx = createHandlerContext({
      service: WorkerService,
      method: WorkerService.method.compute,
      protocolName: "quartet-broker",
      requestMethod: "POST",
      url: `${options.brokerUrl}/${WorkerService.typeName}/Compute`,
      requestSignal: signal,
    });
    const res = await options.worker.compute!(req, ctx);
    return toBinary(ComputeResponseSchema, create(ComputeResponseSchema, res));
  };

  const onJob = async (job: ReceivedJob) => {
    const { sequence, attempt } = job.delivery;
    const fields = { queue: options.queue, seq: Number(sequence), attempt };
    if (options.fault === "stall") {
      logger.info(fields, "job received, stalling");
      return new Promise<void>(() => {});
    }
    try {
      const result = await compute(job.payload, stop.signal);
      const to = job.headers[RESULT_SUBJECT_HEADER];
      if (to) {
        replies.add(to, result, {
          "quartet-job": String(sequence),
          "quartet-worker": options.workerId,
          "quartet-attempt": String(attempt),
        });
      }
      logger.info(fields, "job done");
    } catch (e) {
      logger.info({ ...fields, err: (e as Error).message }, "job failed");
      throw e;
    }
  };

  if (options.queue) {
    const queue = options.queue;
    void retrying("consumer", logger, stop.signal, options.warnAfterMs, async (connected) => {
      const consumer = client.consume(queue, onJob, {
        maxInFlight: options.maxInFlight,
        signal: stop.signal,
      });
      // `done` rejects when the stream fails before it is ready; racing keeps that rejection
      // handled (awaiting `ready` alone would leave it unhandled and end the process).
      await Promise.race([consumer.ready, consumer.done]);
      connected();
      logger.info({ queue, maxInFlight: options.maxInFlight }, "consumer attached");
      await consumer.done;
    });
  }
  if (options.requestSubject) {
    const subject = options.requestSubject;
    void retrying("responder", logger, stop.signal, options.warnAfterMs, async (connected) => {
      const sub = await client.subscribe(subject, { queueGroup: "workers", signal: stop.signal });
      connected();
      logger.info({ subject }, "responder subscribed");
      for await (const batch of sub.batches) {
        for (const message of batch) {
          if (!message.replyTo) continue;
          processMessage(subject, message.headers, () =>
            compute(message.payload, stop.signal),
          ).then(
            (result) => replies.add(message.replyTo, result, {}),
            (e: unknown) => {
              const err = ConnectError.from(e);
              replies.add(message.replyTo, new Uint8Array(), {
                [ERROR_CODE_HEADER]: Code[err.code],
                [ERROR_MESSAGE_HEADER]: err.rawMessage,
              });
            },
          );
        }
      }
    });
  }
  return () => stop.abort();
}

/**
 * Runs `attempt` again after failures, with capped exponential backoff, until stopped.
 * Workers usually start before their broker (as under `npm start`), so the retries while it
 * cannot be reached are logged at debug level; one warning follows if it is still out of
 * reach after `warnAfterMs`. `attempt` calls `connected()` once it reached the broker; losing
 * it after that is logged once, at info level, and starts a new quiet wait.
 */
async function retrying(
  what: string,
  logger: Logger,
  signal: AbortSignal,
  warnAfterMs: number,
  attempt: (connected: () => void) => Promise<void>,
): Promise<void> {
  let failures = 0;
  let waitingSince = performance.now();
  let warned = false;
  while (!signal.aborted) {
    let reached = false;
    let err: string | undefined;
    try {
      await attempt(() => {
        reached = true;
      });
    } catch (e) {
      err = (e as Error).message;
    }
    if (signal.aborted) return;
    if (reached) {
      logger.info({ err }, `${what} lost the broker; reconnecting`);
      failures = 0;
      waitingSince = performance.now();
      warned = false;
    } else {
      failures++;
      const waitedMs = Math.round(performance.now() - waitingSince);
      if (!warned && waitedMs >= warnAfterMs) {
        warned = true;
        logger.warn(
          { err, failures },
          `${what} still has no broker after ${waitedMs} ms; retrying`,
        );
      } else {
        logger.debug({ err, failures }, `${what} waiting for the broker; retrying`);
      }
    }
    const wait = Math.min(5000, 100 * 2 ** Math.min(failures, 6));
    await new Promise<void>((resolve) => {
      const t = setTimeout(resolve, wait);
      signal.addEventListener(
        "abort",
        () => {
          clearTimeout(t);
          resolve();
        },
        { once: true },
      );
    });
  }
}

/**
 * Publishes replies and results on one PublishStream, one batch per event-loop turn; a new
 * stream is opened after a failure (replies in a failed batch are lost, as with any publish
 * to a broker that went away: their requesters time out).
 */
class ReplyBatcher {
  private pending: { subject: string; payload: Uint8Array; headers: { [k: string]: string } }[] =
    [];
  private publisher: StreamPublisher | undefined;
  private readonly client: BrokerClient;
  private readonly logger: Logger;

  constructor(client: BrokerClient, logger: Logger) {
    this.client = client;
    this.logger = logger;
  }

  add(subject: string, payload: Uint8Array, headers: { [k: string]: string }): void {
    if (this.pending.length === 0) setImmediate(() => this.flush());
    this.pending.push({ subject, payload, headers });
  }

  private flush(): void {
    if (!this.publisher) {
      const publisher = this.client.openPublisher();
      this.publisher = publisher;
      publisher.done.catch((e: unknown) => {
        if (this.publisher === publisher) this.publisher = undefined;
        this.logger.warn({ err: (e as Error).message }, "reply stream failed; opening a new one");
      });
    }
    void this.publisher.publish(this.pending.splice(0));
  }
}
