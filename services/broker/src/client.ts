import { type Client, Code, ConnectError, createClient, type Transport } from "@connectrpc/connect";
import { context, type Context, SpanKind, SpanStatusCode, trace } from "@opentelemetry/api";
import {
  BrokerAdminService,
  BrokerService,
  type Delivery,
  type Message,
  Overflow,
  type QueueMessage,
  type RequestManyResponse,
} from "@quartet/proto/quartet/broker/v1/broker_pb";
import {
  createTelemetryTransport,
  extractMessageContext,
  injectMessageHeaders,
} from "@quartet/telemetry";

export interface BrokerClientOptions {
  /** Broker base URL, e.g. "http://127.0.0.1:7100". */
  baseUrl: string;
  /** Sent as `quartet-client-id`; the broker counts subscriptions per client id. */
  clientId?: string;
  /** Cluster token for the admin service. */
  token?: string;
  /** Replaces the default transport (binary Connect over HTTP/2 with tracing). */
  transport?: Transport;
}

export interface SubscribeOptions {
  queueGroup?: string;
  bufferSize?: number;
  overflow?: "drop-oldest" | "disconnect";
  maxBatch?: number;
  signal?: AbortSignal;
}

/** An active subscription: iterate `messages`; `close()` ends it. */
export interface Subscriber {
  /** Messages in publish order per publisher; ends when the subscription is closed. */
  messages: AsyncIterable<Message>;
  /** Batches as the broker sent them (use either this or `messages`). */
  batches: AsyncIterable<Message[]>;
  /** Messages the broker dropped because this subscriber was slow. */
  dropped(): number;
  close(): void;
}

export interface ConsumeOptions {
  /** Credit window: unacknowledged deliveries at once. */
  maxInFlight?: number;
  maxBatch?: number;
  signal?: AbortSignal;
  /** Nack delay after a failed handler, in ms. */
  nackDelayMs?: number;
}

/** What a consumer handler gets; throwing (or rejecting) nacks the delivery. */
export interface ReceivedJob {
  delivery: Delivery;
  payload: Uint8Array;
  headers: { [name: string]: string };
}

const tracer = () => trace.getTracer("@quartet/broker-service");
const SYSTEM = "quartet";

/**
 * A broker client for Node: binary Protobuf over HTTP/2. Publishing and enqueueing start a
 * producer span ("publish <destination>") and put its context in the message headers;
 * `consume` runs each job in a consumer span ("process <queue>") that is a child of, and
 * links to, the producer's. Concurrent `request()` calls are coalesced into RequestMany
 * calls, and acks into batched Ack calls.
 */
export class BrokerClient {
  readonly broker: Client<typeof BrokerService>;
  readonly admin: Client<typeof BrokerAdminService>;
  private pendingRequests: {
    subject: string;
    payload: Uint8Array;
    headers: { [k: string]: string };
    timeoutMs: number;
    resolve: (m: Message) => void;
    reject: (e: unknown) => void;
  }[] = [];

  constructor(options: BrokerClientOptions) {
    const headers: Record<string, string> = {};
    if (options.clientId) headers["quartet-client-id"] = options.clientId;
    const transport =
      options.transport ??
      createTelemetryTransport({
        baseUrl: options.baseUrl,
        httpVersion: "2",
        useBinaryFormat: true,
        interceptors: [
          (next) => (req) => {
            for (const [k, v] of Object.entries(headers)) req.header.set(k, v);
            if (options.token && req.service.typeName === BrokerAdminService.typeName) {
              req.header.set("authorization", `Bearer ${options.token}`);
            }
            return next(req);
          },
        ],
      });
    this.broker = createClient(BrokerService, transport);
    this.admin = createClient(BrokerAdminService, transport);
  }

  /** Publishes one message in a producer span; returns how many subscribers got it. */
  async publish(
    subject: string,
    payload: Uint8Array,
    options: { headers?: { [k: string]: string }; replyTo?: string } = {},
  ): Promise<number> {
    return tracer().startActiveSpan(
      `publish ${subject}`,
      { kind: SpanKind.PRODUCER, attributes: messagingAttributes(subject, "publish") },
      async (span) => {
        try {
          const headers = injectMessageHeaders({ ...options.headers });
          const res = await this.broker.publish({ subject, payload, headers, replyTo: options.replyTo ?? "" });
          return res.delivered;
        } catch (e) {
          fail(span, e);
          throw e;
        } finally {
          span.end();
        }
      },
    );
  }

  /** Publishes many messages in one call (no span each; the active trace context is injected). */
  async publishBatch(
    messages: { subject: string; payload: Uint8Array; headers?: { [k: string]: string }; replyTo?: string }[],
  ): Promise<number> {
    const traced = trace.getSpan(context.active()) !== undefined;
    const res = await this.broker.publishBatch({
      messages: messages.map((m) => ({
        subject: m.subject,
        payload: m.payload,
        headers: traced ? injectMessageHeaders({ ...m.headers }) : (m.headers ?? {}),
        replyTo: m.replyTo ?? "",
      })),
    });
    return Number(res.delivered);
  }

  /** Subscribes and resolves once the subscription is active on the broker. */
  async subscribe(subject: string, options: SubscribeOptions = {}): Promise<Subscriber> {
    const abort = new AbortController();
    options.signal?.addEventListener("abort", () => abort.abort(), { once: true });
    const stream = this.broker.subscribe(
      {
        subject,
        queueGroup: options.queueGroup ?? "",
        bufferSize: options.bufferSize ?? 0,
        overflow: options.overflow === "disconnect" ? Overflow.DISCONNECT : Overflow.DROP_OLDEST,
        maxBatch: options.maxBatch ?? 0,
      },
      { signal: abort.signal },
    )[Symbol.asyncIterator]();
    const first = await stream.next();
    if (first.done || !first.value.ready) throw new ConnectError("subscribe stream ended before it was ready", Code.Internal);
    let dropped = 0;
    const batches = async function* (): AsyncGenerator<Message[]> {
      try {
        for (;;) {
          const next = await stream.next();
          if (next.done) return;
          dropped = Number(next.value.dropped);
          yield next.value.messages;
        }
      } catch (e) {
        if (abort.signal.aborted && ConnectError.from(e).code === Code.Canceled) return;
        throw e;
      }
    };
    const iterable = batches();
    return {
      batches: iterable,
      messages: (async function* () {
        for await (const batch of iterable) yield* batch;
      })(),
      dropped: () => dropped,
      close: () => abort.abort(),
    };
  }

  /**
   * Sends a request and resolves with the first reply. Requests made in the same event-loop
   * turn travel in one RequestMany call. Fails with Unavailable when nobody listens and
   * DeadlineExceeded when no reply comes in time.
   */
  request(
    subject: string,
    payload: Uint8Array,
    options: { headers?: { [k: string]: string }; timeoutMs?: number } = {},
  ): Promise<Message> {
    return new Promise((resolve, reject) => {
      if (this.pendingRequests.length === 0) setImmediate(() => this.flushRequests());
      this.pendingRequests.push({
        subject,
        payload,
        headers: options.headers ?? {},
        timeoutMs: options.timeoutMs ?? 0,
        resolve,
        reject,
      });
    });
  }

  /** Enqueues jobs in a producer span; resolves once the broker stored them durably. */
  async enqueue(queue: string, items: { payload: Uint8Array; headers?: { [k: string]: string } }[]): Promise<bigint[]> {
    return tracer().startActiveSpan(
      `publish ${queue}`,
      { kind: SpanKind.PRODUCER, attributes: { ...messagingAttributes(queue, "publish"), "messaging.batch.message_count": items.length } },
      async (span) => {
        try {
          const res = await this.broker.enqueue({
            queue,
            messages: items.map((m) => ({ payload: m.payload, headers: injectMessageHeaders({ ...m.headers }) })),
          });
          return res.sequences;
        } catch (e) {
          fail(span, e);
          throw e;
        } finally {
          span.end();
        }
      },
    );
  }

  /**
   * Consumes a work queue: `handler` runs for each delivery inside a "process <queue>" span;
   * success acks, a throw nacks. `ready` resolves once attached; `done` when the stream ends
   * (rejecting with its error, or resolving when `signal` aborted).
   */
  consume(
    queue: string,
    handler: (job: ReceivedJob) => Promise<void> | void,
    options: ConsumeOptions = {},
  ): { ready: Promise<void>; done: Promise<void> } {
    const acks = new Batcher((ids) => this.broker.ack({ queue, deliveryIds: ids }));
    const nacks = new Batcher((ids) => this.broker.nack({ queue, deliveryIds: ids, delayMs: options.nackDelayMs ?? 0 }));
    let markReady!: () => void;
    let readyFailed!: (e: unknown) => void;
    const ready = new Promise<void>((resolve, reject) => {
      markReady = resolve;
      readyFailed = reject;
    });
    const done = (async () => {
      try {
        const stream = this.broker.receive(
          { queue, maxInFlight: options.maxInFlight ?? 0, maxBatch: options.maxBatch ?? 0 },
          { signal: options.signal },
        );
        for await (const res of stream) {
          if (res.ready) markReady();
          for (const delivery of res.deliveries) {
            void runJob(queue, delivery, handler).then(
              () => acks.add(delivery.deliveryId),
              () => nacks.add(delivery.deliveryId),
            );
          }
        }
      } catch (e) {
        readyFailed(e);
        if (options.signal?.aborted) return;
        throw e;
      }
      readyFailed(new ConnectError("receive stream ended", Code.Unavailable));
    })();
    ready.catch(() => {});
    return { ready, done };
  }

  private flushRequests(): void {
    const batch = this.pendingRequests.splice(0, 1000);
    if (this.pendingRequests.length > 0) setImmediate(() => this.flushRequests());
    const stream = this.broker.requestMany({
      requests: batch.map((r) => ({ subject: r.subject, payload: r.payload, headers: r.headers, timeoutMs: r.timeoutMs })),
    });
    void (async () => {
      const settled = new Set<number>();
      try {
        for await (const res of stream) settle(batch, res, settled);
      } catch (e) {
        for (const [i, r] of batch.entries()) if (!settled.has(i)) r.reject(e);
      }
    })();
  }
}

function settle(
  batch: { resolve: (m: Message) => void; reject: (e: unknown) => void }[],
  res: RequestManyResponse,
  settled: Set<number>,
): void {
  const r = batch[res.index];
  if (!r || settled.has(res.index)) return;
  settled.add(res.index);
  if (res.reply) r.resolve(res.reply);
  else r.reject(new ConnectError(res.errorMessage, codeOf(res.errorCode)));
}

function codeOf(name: string): Code {
  const key = name.replace(/(^|_)([a-z])/g, (_m, _s, c: string) => c.toUpperCase()) as keyof typeof Code;
  return (Code[key] as Code | undefined) ?? Code.Unknown;
}

/** Runs one job inside a consumer span that continues the producer's trace. */
async function runJob(
  queue: string,
  delivery: Delivery,
  handler: (job: ReceivedJob) => Promise<void> | void,
): Promise<void> {
  const headers = delivery.message?.headers ?? {};
  const producer: Context = extractMessageContext(headers);
  const producerSpan = trace.getSpanContext(producer);
  return tracer().startActiveSpan(
    `process ${queue}`,
    {
      kind: SpanKind.CONSUMER,
      attributes: {
        ...messagingAttributes(queue, "process"),
        "messaging.message.id": String(delivery.sequence),
        "messaging.message.delivery_attempt": delivery.attempt,
      },
      links: producerSpan ? [{ context: producerSpan }] : [],
    },
    producer,
    async (span) => {
      try {
        await handler({ delivery, payload: delivery.message?.payload ?? new Uint8Array(), headers });
      } catch (e) {
        fail(span, e);
        throw e;
      } finally {
        span.end();
      }
    },
  );
}

/** Semantic-convention attributes of a messaging span. */
export function messagingAttributes(destination: string, operation: "publish" | "process" | "receive") {
  return {
    "messaging.system": SYSTEM,
    "messaging.destination.name": destination,
    "messaging.operation.type": operation === "publish" ? "send" : operation,
    "messaging.operation.name": operation,
  };
}

function fail(span: ReturnType<typeof trace.getActiveSpan> & object, e: unknown): void {
  span.recordException(e as Error);
  span.setStatus({ code: SpanStatusCode.ERROR, message: String((e as Error)?.message ?? e) });
}

/**
 * Collects delivery ids and sends them in one call per event-loop turn. A batch the broker
 * refuses (one id no longer in flight refuses all) is retried one id at a time so the
 * valid ones still count.
 */
class Batcher {
  private ids: bigint[] = [];
  private readonly send: (ids: bigint[]) => Promise<unknown>;

  constructor(send: (ids: bigint[]) => Promise<unknown>) {
    this.send = send;
  }

  add(id: bigint): void {
    if (this.ids.length === 0) setImmediate(() => this.flush());
    this.ids.push(id);
  }

  private flush(): void {
    const ids = this.ids.splice(0);
    this.send(ids).catch(() => {
      if (ids.length > 1) for (const id of ids) this.send([id]).catch(() => {});
    });
  }
}

export type { Message, QueueMessage };
