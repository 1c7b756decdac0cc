import type { MessageInitShape } from "@bufbuild/protobuf";
import { type Client, Code, ConnectError, createClient, type Transport } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import {
  KVService,
  type RangeRequestSchema,
  type RangeResponse,
} from "@quartet/proto/quartet/consensus/v1/kv_pb";
import { LeaseService } from "@quartet/proto/quartet/consensus/v1/lease_pb";
import { type Event, WatchService } from "@quartet/proto/quartet/consensus/v1/watch_pb";

export { neverConnected } from "./never-connected.ts";

export interface ConsensusClientOptions {
  /** Base URLs of the members (any of them: calls reach the leader through them). */
  endpoints: string[];
  /** Makes the transport for one endpoint; default gRPC over h2c. */
  transport?: (baseUrl: string) => Transport;
  /** Waits between attempts on another member: attempt -> ms. Default 50 ms doubling to 1 s. */
  backoff?: (attempt: number) => number;
  /** Attempts for a call that is safe to retry. Default 10. */
  attempts?: number;
}

/** Codes that say the member could not take the call at all (try another). */
const tryElsewhere = new Set([Code.Unavailable, Code.Canceled, Code.Unknown]);

interface Member {
  kv: Client<typeof KVService>;
  lease: Client<typeof LeaseService>;
  watch: Client<typeof WatchService>;
}

/**
 * A client of a consensus cluster for services and users. Any member takes any call (writes
 * are forwarded to the leader by the member), so the client only moves on to another member
 * when one is unreachable or has no leader, and retries only what is safe to retry: reads
 * always, writes only through `retryWrites` (idempotent ones such as a Put of a fixed value).
 * Watches resume after a reconnect from the revision after the last one delivered, so
 * every event arrives once and in revision order; a lease keep-alive helper renews a lease
 * until told to stop.
 */
export class ConsensusClient {
  private readonly members: Member[];
  private readonly backoff: (attempt: number) => number;
  private readonly attempts: number;
  private next = 0;

  constructor(options: ConsensusClientOptions) {
    if (options.endpoints.length === 0) throw new Error("give at least one endpoint");
    const transport = options.transport ?? ((baseUrl) => createGrpcTransport({ baseUrl }));
    this.members = options.endpoints.map((url) => {
      const t = transport(url);
      return {
        kv: createClient(KVService, t),
        lease: createClient(LeaseService, t),
        watch: createClient(WatchService, t),
      };
    });
    this.backoff = options.backoff ?? ((n) => Math.min(1000, 50 * 2 ** n));
    this.attempts = options.attempts ?? 10;
  }

  /** The KV service of the member in use (no retries: for writes whose outcome matters). */
  get kv(): Client<typeof KVService> {
    return this.member().kv;
  }

  get lease(): Client<typeof LeaseService> {
    return this.member().lease;
  }

  /** A linearizable (or serializable) read, retried on other members when one cannot answer. */
  range(
    req: MessageInitShape<typeof RangeRequestSchema>,
    signal?: AbortSignal,
  ): Promise<RangeResponse> {
    return this.retrying((m) => m.kv.range(req, { signal }), signal);
  }

  /** Runs `call` on members in turn until one answers (for calls safe to repeat). */
  async retrying<R>(call: (m: Member) => Promise<R>, signal?: AbortSignal): Promise<R> {
    let last: unknown;
    for (let attempt = 0; attempt < this.attempts; attempt++) {
      signal?.throwIfAborted();
      try {
        return await call(this.member());
      } catch (e) {
        const err = ConnectError.from(e);
        if (!tryElsewhere.has(err.code)) throw err;
        last = err;
        this.moveOn();
        await sleep(this.backoff(attempt), signal);
      }
    }
    throw last;
  }

  /**
   * Watches `key` (or [key, rangeEnd)) from `startRevision` (0: from now), yielding each
   * event once, in revision order, across member failures and leader changes: after a
   * broken stream it reconnects (to another member if needed) from the last revision seen.
   */
  async *watch(
    req: { key: Uint8Array; rangeEnd?: Uint8Array; startRevision?: bigint; prevKv?: boolean },
    signal?: AbortSignal,
  ): AsyncGenerator<Event> {
    let from = req.startRevision ?? 0n;
    for (let attempt = 0; !signal?.aborted; ) {
      try {
        const stream = this.member().watch.watch(
          {
            key: req.key,
            rangeEnd: req.rangeEnd ?? new Uint8Array(),
            startRevision: from,
            prevKv: req.prevKv ?? false,
          },
          { signal },
        );
        for await (const res of stream) {
          if (res.compactRevision > 0n) {
            throw new ConnectError(
              `revision ${from} has been compacted (watchable from ${res.compactRevision}): read the current state, then watch from after it`,
              Code.OutOfRange,
            );
          }
          // The first response says the watch is live at this revision.
          if (from === 0n && res.header) from = res.header.revision + 1n;
          attempt = 0;
          for (const e of res.events) {
            const rev = e.kv?.modRevision ?? 0n;
            if (rev < from) continue;
            yield e;
            from = rev + 1n;
          }
        }
      } catch (e) {
        if (signal?.aborted) return;
        const err = ConnectError.from(e);
        if (err.code === Code.OutOfRange || err.code === Code.InvalidArgument) throw err;
      }
      this.moveOn();
      await sleep(this.backoff(attempt++), signal).catch(() => {});
    }
  }

  /** Renews lease `id` every `everyMs` until `signal` aborts; resolves then. */
  async keepAlive(id: bigint, everyMs: number, signal: AbortSignal): Promise<void> {
    while (!signal.aborted) {
      await this.retrying((m) => m.lease.leaseKeepAliveOnce({ id }, { signal }), signal).catch(
        (e: unknown) => {
          if (!signal.aborted) throw e;
        },
      );
      await sleep(everyMs, signal).catch(() => {});
    }
  }

  private member(): Member {
    return this.members[this.next % this.members.length] as Member;
  }

  private moveOn(): void {
    this.next++;
  }
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const t = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(t);
      reject(signal?.reason);
    };
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}
