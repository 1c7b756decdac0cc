import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, type HandlerContext, type ServiceImpl } from "@connectrpc/connect";
import {
  BrokerError,
  type Delivery,
  defaultQueueSettings,
  INBOX_PREFIX,
  parseSubject,
  type PubSub,
  type Queues,
  type QueueStats as CoreStats,
} from "@quartet/broker";
import {
  type BrokerAdminService,
  type BrokerService,
  type Delivery as DeliveryMessage,
  DeliverySchema,
  type Message,
  Overflow,
  type QueueStats,
  QueueStatsSchema,
  type RequestManyResponse,
  RequestManyResponseSchema,
  type RequestRequest,
} from "@quartet/proto/quartet/broker/v1/broker_pb";
import type { Logger } from "@quartet/server";
import {
  type BrokerLimits,
  checkBatch,
  checkMessage,
  connectErrors,
  invalid,
  toConnectError,
} from "./limits.ts";

export interface BrokerDeps {
  pubsub: PubSub<Message>;
  queues: Queues;
  limits: BrokerLimits;
  logger: Logger;
  /** Aborts when the broker begins shutting down: streams end then. */
  closing?: AbortSignal;
}

const MESSAGE = "quartet.broker.v1.Message" as const;
const DEFAULT_REQUEST_TIMEOUT_MS = 30_000;
const MAX_REQUEST_TIMEOUT_MS = 300_000;

/** Parses a publish subject, naming the field in the error. */
function literalSubject(field: string, subject: string): string[] {
  try {
    return parseSubject(subject, { wildcards: false });
  } catch (e) {
    throw invalid(field, (e as Error).message);
  }
}

function toMessage(
  subject: string,
  payload: Uint8Array,
  headers: { [k: string]: string },
  replyTo: string,
): Message {
  return { $typeName: MESSAGE, subject, payload, headers, replyTo };
}

/** Implements quartet.broker.v1.BrokerService over the pub/sub and queue cores. */
export function createBrokerService(deps: BrokerDeps): ServiceImpl<typeof BrokerService> {
  const { pubsub, queues, limits, logger } = deps;
  const subscriptionsByClient = new Map<string, number>();

  function prepare(
    field: string,
    m: { subject: string; payload: Uint8Array; headers: { [k: string]: string }; replyTo: string },
  ): { message: Message; tokens: string[] } {
    const tokens = literalSubject(`${field}.subject`, m.subject);
    if (m.replyTo !== "") literalSubject(`${field}.reply_to`, m.replyTo);
    checkMessage(field, m.payload, m.headers, limits);
    return { message: toMessage(m.subject, m.payload, m.headers, m.replyTo), tokens };
  }

  function requestTimeout(field: string, timeoutMs: number, ctx: HandlerContext): AbortSignal {
    if (timeoutMs > MAX_REQUEST_TIMEOUT_MS) {
      throw invalid(field, `${timeoutMs} is above the limit of ${MAX_REQUEST_TIMEOUT_MS} ms`);
    }
    return AbortSignal.any([
      ctx.signal,
      AbortSignal.timeout(timeoutMs === 0 ? DEFAULT_REQUEST_TIMEOUT_MS : timeoutMs),
    ]);
  }

  async function requestOne(field: string, r: RequestRequest, signal: AbortSignal): Promise<Message> {
    const tokens = literalSubject(`${field}.subject`, r.subject);
    checkMessage(field, r.payload, r.headers, limits);
    return connectErrors(() =>
      pubsub.request({ $typeName: MESSAGE, subject: r.subject, payload: r.payload, headers: r.headers }, tokens, signal),
    );
  }

  return {
    publish(req) {
      const { message, tokens } = prepare("message", req);
      return { delivered: pubsub.publish(message, tokens) };
    },

    publishBatch(req) {
      checkBatch("messages", req.messages.length);
      const prepared = req.messages.map((m, i) => prepare(`messages[${i}]`, m));
      let delivered = 0;
      for (const { message, tokens } of prepared) delivered += pubsub.publish(message, tokens);
      return { delivered: BigInt(delivered) };
    },

    async *subscribe(req, ctx) {
      if (req.queueGroup !== "" && !/^[A-Za-z0-9_-]{1,64}$/.test(req.queueGroup)) {
        throw invalid("queue_group", `${JSON.stringify(req.queueGroup.slice(0, 80))} is invalid; use 1 to 64 characters of [A-Za-z0-9_-]`);
      }
      if (req.bufferSize > limits.maxBufferSize) {
        throw new ConnectError(
          `buffer_size: ${req.bufferSize} is above the broker's limit of ${limits.maxBufferSize} messages`,
          Code.ResourceExhausted,
        );
      }
      if (req.maxBatch > 10_000) throw invalid("max_batch", `${req.maxBatch} is above the limit of 10000`);
      const client = ctx.requestHeader.get("quartet-client-id") ?? "anonymous";
      const open = subscriptionsByClient.get(client) ?? 0;
      if (open >= limits.maxSubscriptionsPerClient) {
        throw new ConnectError(
          `client ${JSON.stringify(client)} already has ${open} subscriptions, the broker's limit per client; close some first`,
          Code.ResourceExhausted,
        );
      }
      let sub: ReturnType<typeof pubsub.subscribe>;
      try {
        sub = pubsub.subscribe({
          subject: req.subject,
          queueGroup: req.queueGroup,
          bufferSize: req.bufferSize === 0 ? 8192 : req.bufferSize,
          overflow: req.overflow === Overflow.DISCONNECT ? "disconnect" : "drop-oldest",
        });
      } catch (e) {
        if (e instanceof BrokerError) throw invalid("subject", e.message);
        throw e;
      }
      subscriptionsByClient.set(client, open + 1);
      const maxBatch = req.maxBatch === 0 ? 1000 : req.maxBatch;
      const ended = deps.closing ? AbortSignal.any([ctx.signal, deps.closing]) : ctx.signal;
      try {
        yield { ready: true };
        for (;;) {
          const batch = await sub.next(maxBatch, ended);
          if (!batch) return;
          yield { messages: batch, dropped: BigInt(sub.dropped) };
        }
      } catch (e) {
        if (e instanceof BrokerError) logger.warn({ subject: req.subject, client }, e.message);
        throw toConnectError(e);
      } finally {
        sub.close();
        const left = (subscriptionsByClient.get(client) ?? 1) - 1;
        if (left === 0) subscriptionsByClient.delete(client);
        else subscriptionsByClient.set(client, left);
      }
    },

    async request(req, ctx) {
      const signal = requestTimeout("timeout_ms", req.timeoutMs, ctx);
      return { reply: await requestOne("request", req, signal) };
    },

    async *requestMany(req, ctx) {
      checkBatch("requests", req.requests.length, 1000);
      for (const [i, r] of req.requests.entries()) {
        literalSubject(`requests[${i}].subject`, r.subject);
        checkMessage(`requests[${i}]`, r.payload, r.headers, limits);
        if (r.timeoutMs > MAX_REQUEST_TIMEOUT_MS) {
          throw invalid(`requests[${i}].timeout_ms`, `${r.timeoutMs} is above the limit of ${MAX_REQUEST_TIMEOUT_MS} ms`);
        }
      }
      const done: RequestManyResponse[] = [];
      let wake: (() => void) | undefined;
      let pending = req.requests.length;
      req.requests.forEach((r, index) => {
        const signal = requestTimeout(`requests[${index}].timeout_ms`, r.timeoutMs, ctx);
        requestOne(`requests[${index}]`, r, signal).then(
          (reply) => done.push(create(RequestManyResponseSchema, { index, reply })),
          (e: unknown) => {
            const err = ConnectError.from(e);
            done.push(
              create(RequestManyResponseSchema, {
                index,
                errorCode: Code[err.code].replace(/[A-Z]/g, (c, at: number) => (at ? "_" : "") + c.toLowerCase()),
                errorMessage: err.rawMessage,
              }),
            );
          },
        ).finally(() => {
          pending--;
          wake?.();
        });
      });
      while (pending > 0 || done.length > 0) {
        if (done.length === 0) await new Promise<void>((r) => (wake = r));
        wake = undefined;
        for (const response of done.splice(0)) yield response;
      }
    },

    async enqueue(req) {
      checkBatch("messages", req.messages.length);
      req.messages.forEach((m, i) => checkMessage(`messages[${i}]`, m.payload, m.headers, limits));
      const seqs = await connectErrors(() => queues.enqueue(req.queue, req.messages));
      return { sequences: seqs.map(BigInt) };
    },

    async *receive(req, ctx) {
      if (req.maxInFlight > 10_000) throw invalid("max_in_flight", `${req.maxInFlight} is above the limit of 10000`);
      if (req.maxBatch > 10_000) throw invalid("max_batch", `${req.maxBatch} is above the limit of 10000`);
      const maxBatch = req.maxBatch === 0 ? 256 : req.maxBatch;
      const pending: Delivery[] = [];
      let wake: (() => void) | undefined;
      let deleted = false;
      const detach = await connectErrors(() =>
        queues.attach(
          req.queue,
          {
            maxInFlight: req.maxInFlight === 0 ? 64 : req.maxInFlight,
            deliver(deliveries) {
              for (const d of deliveries) pending.push(d);
              wake?.();
            },
          },
          () => {
            deleted = true;
            wake?.();
          },
        ),
      );
      const onAbort = () => wake?.();
      const ended = deps.closing ? AbortSignal.any([ctx.signal, deps.closing]) : ctx.signal;
      ended.addEventListener("abort", onAbort);
      try {
        yield { ready: true };
        for (;;) {
          if (pending.length === 0 && !deleted && !ended.aborted) {
            await new Promise<void>((r) => (wake = r));
            wake = undefined;
          }
          if (deleted) throw new ConnectError(`queue ${req.queue} was deleted`, Code.NotFound);
          if (ended.aborted) return;
          if (pending.length === 0) continue;
          yield { deliveries: pending.splice(0, maxBatch).map(toDelivery) };
        }
      } finally {
        ended.removeEventListener("abort", onAbort);
        if (!deleted) detach();
      }
    },

    async ack(req) {
      checkBatch("delivery_ids", req.deliveryIds.length);
      await connectErrors(() => queues.ack(req.queue, req.deliveryIds.map(Number)));
      return {};
    },

    async nack(req) {
      checkBatch("delivery_ids", req.deliveryIds.length);
      if (req.delayMs > 3_600_000) throw invalid("delay_ms", `${req.delayMs} is above the limit of 3600000`);
      const deadLettered = await connectErrors(() =>
        queues.nack(req.queue, req.deliveryIds.map(Number), req.delayMs),
      );
      return { deadLettered };
    },

    stats(req) {
      return connectErrors(() => ({ stats: statsOf(queues, req.queue) }));
    },

    listQueues() {
      return { queues: queues.names().map((name) => statsOf(queues, name)) };
    },
  };
}

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
      if (settings.maxDeliveries > 1000) throw invalid("settings.max_deliveries", `${settings.maxDeliveries} is above the limit of 1000`);
      if (settings.ackDeadlineMs < 100 || settings.ackDeadlineMs > 3_600_000) {
        throw invalid("settings.ack_deadline_ms", `${settings.ackDeadlineMs} is outside 100 to 3600000`);
      }
      if (settings.maxLength > 10_000_000) throw invalid("settings.max_length", `${settings.maxLength} is above the limit of 10000000`);
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

function toDelivery(d: Delivery): DeliveryMessage {
  return create(DeliverySchema, {
    deliveryId: BigInt(d.deliveryId),
    sequence: BigInt(d.seq),
    attempt: d.attempt,
    message: { payload: d.item.payload, headers: d.item.headers },
  });
}

function statsOf(queues: Queues, name: string): QueueStats {
  const s: CoreStats = queues.stats(name);
  return create(QueueStatsSchema, {
    queue: name,
    depth: BigInt(s.depth),
    inFlight: BigInt(s.inFlight),
    deadLetters: BigInt(s.deadLetters),
    enqueuedTotal: BigInt(s.enqueuedTotal),
    ackedTotal: BigInt(s.ackedTotal),
    redeliveredTotal: BigInt(s.redeliveredTotal),
    deadLetteredTotal: BigInt(s.deadLetteredTotal),
    consumers: s.consumers,
    settings: queues.settings(name),
  });
}

export { INBOX_PREFIX };
