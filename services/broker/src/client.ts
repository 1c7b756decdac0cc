import { type Client, Code, ConnectError, createClient, type Transport } from "@connectrpc/connect";
import { type Context, context, SpanKind, SpanStatusCode, trace } from "@opentelemetry/api";
import {
  BrokerAdminService,
  BrokerService,
  type Delivery,
  type Message,
  Overflow,
  type PublishStreamRequest,
  type QueueMessage,
  type RequestManyResponse,
} from "@quartet/proto/quartet/broker/v1/broker_pb";
import {
  createTelemetryTransport,
  extractMessageContext,
  injectMessageHeaders,
} from "@quartet/telemetry";
import { WideWindowSessionManager } from "./session-manager.ts";
import { Channel } from "./streams.ts";

export interface BrokerClientOptions {
  /** Broker base URL, e.g. "http://127.0.0.1:7100". */
  baseUrl: string;
  /** Sent as `quartet-client-id`: a label in the broker's logs (limits follow `credentials`). */
  clientId?: string;
  /**
   * Cluster token: needed for the admin service, and sent on every call (an admin has every
   * permission; its `clientId` labels split its limits).
   */
  token?: string;
  /**
   * Bearer token naming this client's identity to the broker (its permissions and limits);
   * without it the client is anonymous.
   */
  credentials?: string;
  /** Replaces the default transport (binary Connect over HTTP/2 with tracing). */
  transport?: Transport;
  /**
   * Use bidirectional and client streams (RequestStream, PublishStream); default true. Set
   * false for transports without them (HTTP/1.1): requests then go by RequestMany.
   */
  streaming?: boolean;
}

/** A publisher over one PublishStream call: batches go out without a call each. */
export interface StreamPublisher {
  /** Sends one batch; the promise resolves once the stream has taken it (backpressure). */
  publish(
    messages: {
      subject: string;
      payload: Uint8Array;
      headers?: { [k: string]: string };
      replyTo?: string;
    }[],
  ): Promise<void>;
  /** Ends the stream; resolves with the total delivered. */
  close(): Promise<number>;
  /** Rejects when the stream fails (its batches may be lost). */
  readonly done: Promise<number>;
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
  private pendingRequests: PendingRequest[] = [];
  private readonly streaming: boolean;
  private requestSession:
    | {
        frames: Channel<{ requests: RequestInit[] }>;
        waiting: Map<number, PendingRequest>;
        next: number;
      }
    | undefined;

  constructor(options: BrokerClientOptions) {
    const headers: Record<string, string> = {};
    if (options.clientId) headers["quartet-client-id"] = options.clientId;
    const transport =
      options.transport ??
      createTelemetryTransport({
        baseUrl: options.baseUrl,
        httpVersion: "2",
        useBinaryFormat: true,
        // Small messages in big batches: compression costs more CPU than loopback bandwidth.
        acceptCompression: [],
        sessionManager: new WideWindowSessionManager(options.baseUrl),
        interceptors: [
          (next) => (req) => {
            for (const [k, v] of Object.entries(headers)) req.header.set(k, v);
            if (options.token) {
              req.header.set("authorization", `Bearer ${options.token}`);
            } else if (options.credentials) {
              req.header.set("authorization", `Bearer ${options.credentials}`);
            }
            return next(req);
          },
        ],
      });
    this.streaming = options.streaming ?? true;
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
          const res = await this.broker.publish({
            subject,
            payload,
            headers,
            replyTo: options.replyTo ?? "",
          });
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
    messages: {
      subject: string;
      payload: Uint8Array;
      headers?: { [k: string]: string };
      replyTo?: string;
    }[],
  ): Promise<number> {
    const traced = trace.getSpan(context.active()) !== undefined;
    const res = await this.broker.publishBatch({
      $typeName: "quartet.broker.v1.PublishBatchRequest",
      messages: messages.map((m) =>
        toMessage(m, traced ? injectMessageHeaders({ ...m.headers }) : (m.headers ?? {})),
      ),
    });
    return Number(res.delivered);
  }

  /** Subscribes and resolves once the subscription is active on the broker. */
  async subscribe(subject: string, options: SubscribeOptions = {}): Promise<Subscriber> {
    const abort = new AbortController();
    options.signal?.addEventListener("abort", () => abort.abort(), { once: true });
    const stream = this.broker
      .subscribe(
        {
          subject,
          queueGroup: options.queueGroup ?? "",
          bufferSize: options.bufferSize ?? 0,
          overflow: options.overflow === "disconnect" ? Overflow.DISCONNECT : Overflow.DROP_OLDEST,
          maxBatch: options.maxBatch ?? 0,
        },
        { signal: abort.signal },
      )
      [Symbol.asyncIterator]();
    const first = await stream.next();
    if (first.done || !first.value.ready)
      throw new ConnectError("subscribe stream ended before it was ready", Code.Internal);
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
    // Inside a trace, the request carries it, so the responder's span joins it.
    const headers =
      trace.getSpan(context.active()) !== undefined
        ? injectMessageHeaders({ ...options.headers })
        : (options.headers ?? {});
    return new Promise((resolve, reject) => {
      if (this.pendingRequests.length === 0) setImmediate(() => this.flushRequests());
      this.pendingRequests.push({
        subject,
        payload,
        headers,
        timeoutMs: options.timeoutMs ?? 0,
        resolve,
        reject,
      });
    });
  }

  /** Enqueues jobs in a producer span; resolves once the broker stored them durably. */
  async enqueue(
    queue: string,
    items: { payload: Uint8Array; headers?: { [k: string]: string } }[],
  ): Promise<bigint[]> {
    return tracer().startActiveSpan(
      `publish ${queue}`,
      {
        kind: SpanKind.PRODUCER,
        attributes: {
          ...messagingAttributes(queue, "publish"),
          "messaging.batch.message_count": items.length,
        },
      },
      async (span) => {
        try {
          const res = await this.broker.enqueue({
            queue,
            messages: items.map(
              (m): QueueMessage => ({
                $typeName: "quartet.broker.v1.QueueMessage",
                payload: m.payload,
                headers: injectMessageHeaders({ ...m.headers }),
              }),
            ),
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
    const nacks = new Batcher((ids) =>
      this.broker.nack({ queue, deliveryIds: ids, delayMs: options.nackDelayMs ?? 0 }),
    );
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
            // Settled inside the job's span, so its Ack or Nack call is a child of it.
            void runJob(queue, delivery, handler, (ok) =>
              (ok ? acks : nacks).add(delivery.deliveryId),
            ).catch(() => {});
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

  /**
   * Opens a PublishStream: each `publish()` sends one batch on it, with no response to wait
   * for. Use it for steady flows such as replies; PublishBatch when you need `delivered`.
   */
  openPublisher(): StreamPublisher {
    const frames = new Channel<PublishStreamRequest>();
    const done = this.broker.publishStream(frames).then((res) => Number(res.delivered));
    done.catch(() => frames.close());
    return {
      publish: (messages) =>
        frames.push({
          $typeName: "quartet.broker.v1.PublishStreamRequest",
          messages: messages.map((m) => toMessage(m, m.headers ?? {})),
        }),
      close: () => {
        frames.close();
        return done;
      },
      done,
    };
  }

  private flushRequests(): void {
    const batch = this.pendingRequests.splice(0, 1000);
    if (this.pendingRequests.length > 0) setImmediate(() => this.flushRequests());
    const requests = batch.map((r) => ({
      subject: r.subject,
      payload: r.payload,
      headers: r.headers,
      timeoutMs: r.timeoutMs,
    }));
    if (this.streaming) {
      const session = this.openRequestSession();
      for (const r of batch) session.waiting.set(session.next++, r);
      session.frames.push({ requests });
      return;
    }
    const stream = this.broker.requestMany({ requests });
    void (async () => {
      const settled = new Set<number>();
      try {
        for await (const res of stream) settle(batch, res, settled);
      } catch (e) {
        for (const [i, r] of batch.entries()) if (!settled.has(i)) r.reject(e);
      }
    })();
  }

  /** The long-lived RequestStream that concurrent requests share; reopened after a failure. */
  private openRequestSession() {
    if (this.requestSession) return this.requestSession;
    const session = {
      frames: new Channel<{ requests: RequestInit[] }>(),
      waiting: new Map<number, PendingRequest>(),
      next: 0,
    };
    this.requestSession = session;
    const end = (error: unknown) => {
      if (this.requestSession === session) this.requestSession = undefined;
      session.frames.close();
      for (const r of session.waiting.values()) r.reject(error);
      session.waiting.clear();
    };
    void (async () => {
      try {
        for await (const res of this.broker.requestStream(session.frames)) {
          for (const result of res.results) {
            const index = Number(result.index);
            const r = session.waiting.get(index);
            if (!r) continue;
            session.waiting.delete(index);
            if (result.reply) r.resolve(result.reply);
            else r.reject(new ConnectError(result.errorMessage, codeOf(result.errorCode)));
          }
        }
        end(new ConnectError("request stream ended", Code.Unavailable));
      } catch (e) {
        end(e);
      }
    })();
    return session;
  }

  /** Ends the shared request stream, if open (pending requests fail with Canceled). */
  close(): void {
    this.requestSession?.frames.close();
  }
}

interface PendingRequest {
  subject: string;
  payload: Uint8Array;
  headers: { [k: string]: string };
  timeoutMs: number;
  resolve: (m: Message) => void;
  reject: (e: unknown) => void;
}

type RequestInit = {
  subject: string;
  payload: Uint8Array;
  headers: { [k: string]: string };
  timeoutMs: number;
};

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
  const key = name.replace(/(^|_)([a-z])/g, (_m, _s, c: string) =>
    c.toUpperCase(),
  ) as keyof typeof Code;
  return (Code[key] as Code | undefined) ?? Code.Unknown;
}

/**
 * A complete Message (every field set, `$typeName` included): protobuf-es sends such
 * objects as they are, where plain initializers would be copied field by field first.
 */
function toMessage(
  m: { subject: string; payload: Uint8Array; replyTo?: string },
  headers: { [k: string]: string },
): Message {
  return {
    $typeName: "quartet.broker.v1.Message",
    subject: m.subject,
    payload: m.payload,
    headers,
    replyTo: m.replyTo ?? "",
  };
}

/**
 * Runs one job inside a consumer span that continues the producer's trace; `settle` is told
 * the outcome inside that span (its ack or nack joins the span's trace).
 */
function runJob(
  queue: string,
  delivery: Delivery,
  handler: (job: ReceivedJob) => Promise<void> | void,
  settle: (ok: boolean) => void,
): Promise<void> {
  const headers = delivery.message?.headers ?? {};
  return processMessage(
    queue,
    headers,
    async () => {
      try {
        await handler({
          delivery,
          payload: delivery.message?.payload ?? new Uint8Array(),
          headers,
        });
      } catch (e) {
        settle(false);
        throw e;
      }
      settle(true);
    },
    {
      "messaging.message.id": String(delivery.sequence),
      "messaging.message.delivery_attempt": delivery.attempt,
    },
  );
}

/**
 * Runs `fn` for a received message in a consumer span "process <destination>" that is a
 * child of the span whose context the message headers carry, and links to it (OTel
 * messaging conventions). Use it for subscribed messages and requests; `consume()` already
 * does it for queue jobs.
 */
export function processMessage<T>(
  destination: string,
  headers: { [name: string]: string },
  fn: () => Promise<T> | T,
  attributes: Record<string, string | number> = {},
): Promise<T> {
  const producer: Context = extractMessageContext(headers);
  const producerSpan = trace.getSpanContext(producer);
  return tracer().startActiveSpan(
    `process ${destination}`,
    {
      kind: SpanKind.CONSUMER,
      attributes: { ...messagingAttributes(destination, "process"), ...attributes },
      links: producerSpan ? [{ context: producerSpan }] : [],
    },
    producer,
    async (span) => {
      try {
        return await fn();
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
export function messagingAttributes(
  destination: string,
  operation: "publish" | "process" | "receive",
) {
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
 * Collects delivery ids and sends them in one call per event-loop turn and trace: ids added
 * inside a recorded span go out in that span's context (the first of its trace this turn), so
 * the call is its child rather than a new root; ids of one trace (say, one Enqueue's jobs)
 * still share a call, and untraced or unsampled ones all share one. A batch the broker
 * refuses (one id no longer in flight refuses all) is retried one id at a time so the valid
 * ones still count.
 */
class Batcher {
  private batches = new Map<string, { ctx: Context; ids: bigint[] }>();
  private readonly send: (ids: bigint[]) => Promise<unknown>;

  constructor(send: (ids: bigint[]) => Promise<unknown>) {
    this.send = send;
  }

  add(id: bigint): void {
    if (this.batches.size === 0) setImmediate(() => this.flush());
    const ctx = context.active();
    const span = trace.getSpan(ctx);
    const key = span?.isRecording() ? span.spanContext().traceId : "";
    const batch = this.batches.get(key);
    if (batch) batch.ids.push(id);
    else this.batches.set(key, { ctx, ids: [id] });
  }

  private flush(): void {
    const batches = this.batches;
    this.batches = new Map();
    for (const { ctx, ids } of batches.values()) {
      context.with(ctx, () =>
        this.send(ids).catch(() => {
          if (ids.length > 1) for (const id of ids) this.send([id]).catch(() => {});
        }),
      );
    }
  }
}

export type { Message, QueueMessage };
