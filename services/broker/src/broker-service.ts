import { setTimeout as sleep } from "node:timers/promises";
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, type HandlerContext, type ServiceImpl } from "@connectrpc/connect";
import {
  BrokerError,
  type QueueStats as CoreStats,
  type Delivery,
  type PubSub,
  parseSubject,
  type Queues,
} from "@quartet/broker";
import {
  type BrokerService,
  type Delivery as DeliveryMessage,
  DeliverySchema,
  type Message,
  Overflow,
  type PublishRequest,
  type QueueStats,
  QueueStatsSchema,
  type RequestManyResponse,
  RequestManyResponseSchema,
  type RequestRequest,
  type RequestResult,
  RequestResultSchema,
} from "@quartet/proto/quartet/broker/v1/broker_pb";
import type { Logger } from "@quartet/server";
import { covers } from "./authz.ts";
import { callerTrace } from "./caller-trace.ts";
import { DeliveryIds } from "./delivery-ids.ts";
import { type Identities, type Identity, openIdentities } from "./identity.ts";
import {
  type BrokerLimits,
  checkBatch,
  checkMessage,
  connectErrors,
  invalid,
  MAX_SUBSCRIBE_BATCH_BYTES,
  toConnectError,
} from "./limits.ts";
import { isInbox, ReplyInboxes } from "./reply-inboxes.ts";
import { codeName, Outbox, untilAborted } from "./streams.ts";
import { SubscriptionBuffers } from "./subscription-buffers.ts";

export interface BrokerDeps {
  pubsub: PubSub<Message>;
  queues: Queues;
  limits: BrokerLimits;
  logger: Logger;
  /** Aborts when the broker begins shutting down: streams end then. */
  closing?: AbortSignal;
  /** Byte budgets of subscription buffers; made from `limits` when not given. */
  buffers?: SubscriptionBuffers;
  /** Who callers are and what they may do; everyone is an open anonymous client when absent. */
  identities?: Identities;
}

function denied(what: string, who: Identity): ConnectError {
  return new ConnectError(
    `${who.name} may not ${what}; ask the broker's operator for a credential that allows it`,
    Code.PermissionDenied,
  );
}

const MESSAGE = "quartet.broker.v1.Message" as const;
const DEFAULT_REQUEST_TIMEOUT_MS = 30_000;
const MAX_REQUEST_TIMEOUT_MS = 300_000;
/** Requests one RequestStream may have waiting for replies at once. */
const MAX_OUTSTANDING_REQUESTS = 10_000;

/** Parses a publish subject, naming the field in the error. */
function literalSubject(field: string, subject: string): readonly string[] {
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
  const buffers = deps.buffers ?? new SubscriptionBuffers(limits, logger);
  const identities = deps.identities ?? openIdentities();
  const visibleQueues = (who: Identity) => visibleQueuesOf(queues, who);
  const deliveryIds = new DeliveryIds();
  const replies = new ReplyInboxes();

  /**
   * Authorizes one message to publish: a reply must go to a reply alias shown to `who` (see
   * ReplyInboxes; `route` then sends it on); `_INBOX.` reply_to subjects belong to the broker.
   * `replying` collects a batch's aliases, so one alias is answered once per batch too.
   */
  function authorize(
    field: string,
    m: Message,
    tokens: readonly string[],
    who: Identity,
    replying?: Set<string>,
  ): void {
    if (m.replyTo !== "" && isInbox(m.replyTo)) {
      throw new ConnectError(
        `${field}.reply_to: _INBOX. subjects are the broker's reply inboxes; use Request, or a reply subject of your own`,
        Code.PermissionDenied,
      );
    }
    if (isInbox(m.subject)) {
      if (replying?.has(m.subject)) replies.refuse(`${field}.subject`, m.subject);
      replies.check(`${field}.subject`, m.subject, who.key);
      replying?.add(m.subject);
    } else if (!who.permissions.canPublish(tokens)) {
      throw denied(`publish to ${JSON.stringify(m.subject)}`, who);
    }
  }

  /** Publishes an authorized message: a reply goes to its requester's inbox, retiring the alias. */
  function route(m: Message, tokens: readonly string[], who: Identity): number {
    if (!isInbox(m.subject)) return pubsub.publish(m, tokens);
    const inbox = replies.take(m.subject, who.key);
    if (inbox === undefined) return 0;
    return pubsub.publish({ ...m, subject: inbox }, literalSubject("message.subject", inbox));
  }

  /**
   * What one subscription is shown of a batch: reply inboxes' traffic only with explicit
   * `_INBOX` permission; a request's reply subject as an alias bound to this identity, and
   * none at all to a subscription whose filter starts with a wildcard (`>` is not a
   * responder); nothing on subjects the identity's subscribe deny list covers.
   */
  function deliveryFilter(
    who: Identity,
    filter: readonly string[],
  ): (batch: Message[]) => Message[] {
    const seesInboxes = who.permissions.seesInboxes();
    const responder = filter[0] !== ">" && filter[0] !== "*";
    const denials = who.permissions.subscribeDenials(filter);
    return (batch) => {
      const shown: Message[] = [];
      for (const m of batch) {
        if (isInbox(m.subject) && !seesInboxes) continue;
        if (denials.length > 0) {
          const tokens = m.subject.split(".");
          if (denials.some((d) => covers(d, tokens))) continue;
        }
        if (m.replyTo !== "" && isInbox(m.replyTo)) {
          shown.push({ ...m, replyTo: responder ? replies.alias(m.replyTo, who.key) : "" });
        } else shown.push(m);
      }
      return shown;
    };
  }

  function checkQueue(who: Identity, queue: string): void {
    if (!who.permissions.canUseQueue(queue))
      throw denied(`use queue ${JSON.stringify(queue)}`, who);
  }

  /** Checks one message to publish; returns its subject's tokens. */
  function check(m: PublishRequest | Message, field = "message"): readonly string[] {
    const tokens = literalSubject(`${field}.subject`, m.subject);
    if (m.replyTo !== "") literalSubject(`${field}.reply_to`, m.replyTo);
    checkMessage(field, m.payload, m.headers, limits);
    return tokens;
  }

  /**
   * Checks a whole batch first (a bad message publishes nothing), then publishes in order.
   * `traced` gives messages without trace context the call's (see callerTrace).
   */
  function publishAll(
    who: Identity,
    messages: Message[],
    traced?: (headers: { [k: string]: string }) => { [k: string]: string },
  ): number {
    checkBatch("messages", messages.length);
    const tokens = new Array<readonly string[]>(messages.length);
    const replying = new Set<string>();
    for (let i = 0; i < messages.length; i++) {
      try {
        tokens[i] = check(messages[i]!);
        authorize("message", messages[i]!, tokens[i]!, who, replying);
      } catch (e) {
        // Named here rather than per message: building field names is not free at 10,000.
        const err = ConnectError.from(e);
        throw new ConnectError(err.rawMessage.replace(/^message/, `messages[${i}]`), err.code);
      }
    }
    let delivered = 0;
    for (let i = 0; i < messages.length; i++) {
      const m = messages[i]!;
      delivered += route(
        toMessage(m.subject, m.payload, traced ? traced(m.headers) : m.headers, m.replyTo),
        tokens[i]!,
        who,
      );
    }
    return delivered;
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

  /** Aborts when the call ends or the broker begins shutting down. */
  function ending(ctx: HandlerContext): AbortSignal {
    return deps.closing ? AbortSignal.any([ctx.signal, deps.closing]) : ctx.signal;
  }

  function checkRequests(who: Identity, requests: RequestRequest[]): void {
    checkBatch("requests", requests.length, 1000);
    for (const [i, r] of requests.entries()) {
      const tokens = literalSubject(`requests[${i}].subject`, r.subject);
      if (isInbox(r.subject) || !who.permissions.canPublish(tokens)) {
        throw denied(`send requests to ${JSON.stringify(r.subject)}`, who);
      }
      checkMessage(`requests[${i}]`, r.payload, r.headers, limits);
      if (r.timeoutMs > MAX_REQUEST_TIMEOUT_MS) {
        throw invalid(
          `requests[${i}].timeout_ms`,
          `${r.timeoutMs} is above the limit of ${MAX_REQUEST_TIMEOUT_MS} ms`,
        );
      }
    }
  }

  /** Runs one request of a batch; its failure becomes an error code and message. */
  function settle(
    who: Identity,
    r: RequestRequest,
    index: number,
    ctx: HandlerContext,
  ): Promise<{ reply: Message } | { errorCode: string; errorMessage: string }> {
    const signal = requestTimeout(`requests[${index}].timeout_ms`, r.timeoutMs, ctx);
    return requestOne(who, `requests[${index}]`, r, signal).then(
      (reply) => ({ reply }),
      (e: unknown) => {
        const err = ConnectError.from(e);
        return { errorCode: codeName(err.code), errorMessage: err.rawMessage };
      },
    );
  }

  async function requestOne(
    who: Identity,
    field: string,
    r: RequestRequest,
    signal: AbortSignal,
  ): Promise<Message> {
    const tokens = literalSubject(`${field}.subject`, r.subject);
    if (isInbox(r.subject) || !who.permissions.canPublish(tokens)) {
      throw denied(`send requests to ${JSON.stringify(r.subject)}`, who);
    }
    checkMessage(field, r.payload, r.headers, limits);
    return connectErrors(() =>
      pubsub.request(
        { $typeName: MESSAGE, subject: r.subject, payload: r.payload, headers: r.headers },
        tokens,
        signal,
      ),
    );
  }

  return {
    publish(req, ctx) {
      const who = identities.of(ctx);
      const tokens = check(req);
      const m = toMessage(req.subject, req.payload, callerTrace()(req.headers), req.replyTo);
      authorize("message", m, tokens, who);
      return { delivered: route(m, tokens, who) };
    },

    publishBatch(req, ctx) {
      const who = identities.of(ctx);
      return { delivered: BigInt(publishAll(who, req.messages, callerTrace())) };
    },

    async *subscribe(req, ctx) {
      const who = identities.of(ctx);
      if (req.queueGroup !== "" && !/^[A-Za-z0-9_-]{1,64}$/.test(req.queueGroup)) {
        throw invalid(
          "queue_group",
          `${JSON.stringify(req.queueGroup.slice(0, 80))} is invalid; use 1 to 64 characters of [A-Za-z0-9_-]`,
        );
      }
      if (req.bufferSize > limits.maxBufferSize) {
        throw new ConnectError(
          `buffer_size: ${req.bufferSize} is above the broker's limit of ${limits.maxBufferSize} messages`,
          Code.ResourceExhausted,
        );
      }
      if (req.maxBatch > 10_000)
        throw invalid("max_batch", `${req.maxBatch} is above the limit of 10000`);
      let filter: readonly string[];
      try {
        filter = parseSubject(req.subject, { wildcards: true });
      } catch (e) {
        throw invalid("subject", (e as Error).message);
      }
      const inboxFilter = filter[0] === "_INBOX";
      if (
        !who.permissions.canSubscribe(filter) ||
        (inboxFilter && !who.permissions.seesInboxes())
      ) {
        throw denied(`subscribe to ${JSON.stringify(req.subject)}`, who);
      }
      const deliver = deliveryFilter(who, filter);
      // Limits are per authenticated identity: the quartet-client-id header is only a label,
      // and all anonymous clients share one budget (see Identities).
      const client = who.key;
      const open = subscriptionsByClient.get(client) ?? 0;
      if (open >= limits.maxSubscriptionsPerClient) {
        throw new ConnectError(
          `${who.name} already has ${open} subscriptions, the broker's limit per client; close some first`,
          Code.ResourceExhausted,
        );
      }
      let sub: ReturnType<typeof pubsub.subscribe>;
      const buffer = buffers.open(client, { subject: req.subject, queueGroup: req.queueGroup });
      try {
        sub = pubsub.subscribe({
          subject: req.subject,
          queueGroup: req.queueGroup,
          bufferSize: req.bufferSize === 0 ? 8192 : req.bufferSize,
          overflow: req.overflow === Overflow.DISCONNECT ? "disconnect" : "drop-oldest",
          ...buffer.options,
        });
      } catch (e) {
        buffer.end();
        if (e instanceof BrokerError) throw invalid("subject", e.message);
        throw e;
      }
      subscriptionsByClient.set(client, open + 1);
      const maxBatch = req.maxBatch === 0 ? 1000 : req.maxBatch;
      const ended = ending(ctx);
      try {
        yield { ready: true };
        for (;;) {
          const batch = await sub.next(maxBatch, ended, MAX_SUBSCRIBE_BATCH_BYTES);
          if (!batch) return;
          const shown = deliver(batch);
          if (shown.length > 0) yield { messages: shown, dropped: BigInt(sub.dropped) };
        }
      } catch (e) {
        // A slow consumer's disconnect was logged when it happened (SubscriptionBuffers).
        throw toConnectError(e);
      } finally {
        sub.close();
        buffer.end();
        const left = (subscriptionsByClient.get(client) ?? 1) - 1;
        if (left === 0) subscriptionsByClient.delete(client);
        else subscriptionsByClient.set(client, left);
      }
    },

    async request(req, ctx) {
      const signal = requestTimeout("timeout_ms", req.timeoutMs, ctx);
      const who = identities.of(ctx);
      const headers = callerTrace()(req.headers);
      return { reply: await requestOne(who, "request", { ...req, headers }, signal) };
    },

    async *requestMany(req, ctx) {
      const who = identities.of(ctx);
      checkRequests(who, req.requests);
      const results = new Outbox<RequestManyResponse>();
      const traced = callerTrace();
      req.requests.forEach((r, index) => {
        results.track(
          settle(who, { ...r, headers: traced(r.headers) }, index, ctx).then((outcome) =>
            create(RequestManyResponseSchema, { index, ...outcome }),
          ),
        );
      });
      results.close();
      for await (const batch of results.batches()) yield* batch;
    },

    publishStream: async (frames, ctx) => {
      const who = identities.of(ctx);
      let delivered = 0;
      for await (const frame of untilAborted(frames, ending(ctx))) {
        delivered += publishAll(who, frame.messages);
      }
      return { delivered: BigInt(delivered) };
    },

    async *requestStream(frames, ctx) {
      const who = identities.of(ctx);
      const results = new Outbox<RequestResult>();
      let next = 0;
      const ended = ending(ctx);
      const onClosing = () =>
        results.fail(new ConnectError("the broker is shutting down; reconnect", Code.Unavailable));
      deps.closing?.addEventListener("abort", onClosing, { once: true });
      (async () => {
        for await (const frame of untilAborted(frames, ended)) {
          checkRequests(who, frame.requests);
          for (const r of frame.requests) {
            const index = next++;
            if (results.outstanding >= MAX_OUTSTANDING_REQUESTS) {
              results.push(
                create(RequestResultSchema, {
                  index: BigInt(index),
                  errorCode: "resource_exhausted",
                  errorMessage: `this stream already has ${MAX_OUTSTANDING_REQUESTS} requests waiting for replies, the broker's limit; wait for some to finish`,
                }),
              );
              continue;
            }
            results.track(
              settle(who, r, index, ctx).then((outcome) =>
                create(RequestResultSchema, { index: BigInt(index), ...outcome }),
              ),
            );
          }
        }
      })().then(
        () => results.close(),
        (e: unknown) => results.fail(e),
      );
      try {
        for await (const batch of results.batches()) yield { results: batch };
      } finally {
        deps.closing?.removeEventListener("abort", onClosing);
      }
    },

    async enqueue(req, ctx) {
      checkQueue(identities.of(ctx), req.queue);
      checkBatch("messages", req.messages.length);
      for (const [i, m] of req.messages.entries()) {
        checkMessage(`messages[${i}]`, m.payload, m.headers, limits);
      }
      const traced = callerTrace();
      const items = req.messages.map((m) => ({ payload: m.payload, headers: traced(m.headers) }));
      const seqs = await connectErrors(() => queues.enqueue(req.queue, items));
      return { sequences: seqs.map(BigInt) };
    },

    async *receive(req, ctx) {
      const who = identities.of(ctx);
      checkQueue(who, req.queue);
      if (req.maxInFlight > 10_000)
        throw invalid("max_in_flight", `${req.maxInFlight} is above the limit of 10000`);
      if (req.maxBatch > 10_000)
        throw invalid("max_batch", `${req.maxBatch} is above the limit of 10000`);
      const maxBatch = req.maxBatch === 0 ? 256 : req.maxBatch;
      const maxInFlight = req.maxInFlight === 0 ? 64 : req.maxInFlight;
      const stream = deliveryIds.open(who.key, maxInFlight);
      const toDelivery = (d: Delivery): DeliveryMessage =>
        create(DeliverySchema, {
          deliveryId: deliveryIds.issue(stream, req.queue, d.deliveryId),
          sequence: BigInt(d.seq),
          attempt: d.attempt,
          message: { payload: d.item.payload, headers: d.item.headers },
        });
      const pending: Delivery[] = [];
      let wake: (() => void) | undefined;
      let deleted = false;
      const detach = await connectErrors(() =>
        queues.attach(
          req.queue,
          {
            maxInFlight,
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
      const ended = ending(ctx);
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
        deliveryIds.close(stream);
      }
    },

    async ack(req, ctx) {
      const who = identities.of(ctx);
      checkQueue(who, req.queue);
      checkBatch("delivery_ids", req.deliveryIds.length);
      await connectErrors(() => queues.settings(req.queue)); // NotFound naming a missing queue
      const ids = deliveryIds.settle(who.key, req.queue, req.deliveryIds, "ack");
      await connectErrors(() => queues.ack(req.queue, ids));
      return {};
    },

    async nack(req, ctx) {
      const who = identities.of(ctx);
      checkQueue(who, req.queue);
      checkBatch("delivery_ids", req.deliveryIds.length);
      if (req.delayMs > 3_600_000)
        throw invalid("delay_ms", `${req.delayMs} is above the limit of 3600000`);
      await connectErrors(() => queues.settings(req.queue)); // NotFound naming a missing queue
      const ids = deliveryIds.settle(who.key, req.queue, req.deliveryIds, "nack");
      const deadLettered = await connectErrors(() => queues.nack(req.queue, ids, req.delayMs));
      return { deadLettered };
    },

    stats(req, ctx) {
      checkQueue(identities.of(ctx), req.queue);
      return connectErrors(() => ({ stats: statsOf(queues, req.queue) }));
    },

    listQueues(_req, ctx) {
      return { queues: visibleQueues(identities.of(ctx)) };
    },

    async *watchQueues(req, ctx) {
      const interval = req.intervalMs === 0 ? 1000 : req.intervalMs;
      if (interval < 100 || interval > 60_000)
        throw invalid(
          "interval_ms",
          `must be 0 (default 1000) or 100 to 60000, got ${req.intervalMs}`,
        );
      const who = identities.of(ctx);
      while (!ctx.signal.aborted) {
        yield {
          queues: visibleQueues(who),
          subscriptions: pubsub.subscriptions,
          queueGroups: pubsub.queueGroups,
          observedAtUnixMs: BigInt(Date.now()),
        };
        // A sample per interval: the counters are the page's time series.
        await sleep(interval, undefined, { signal: ctx.signal }).catch(() => {});
      }
    },
  };
}

/** The queues a caller may use, with their counters. */
function visibleQueuesOf(queues: Queues, who: Identity): QueueStats[] {
  const names = queues.names().filter((name) => who.permissions.canUseQueue(name));
  return names.map((name) => statsOf(queues, name));
}

export function statsOf(queues: Queues, name: string): QueueStats {
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
    purgedTotal: BigInt(s.purgedTotal),
    consumers: s.consumers,
    settings: queues.settings(name),
  });
}
