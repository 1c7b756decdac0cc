import type { DescMessage, DescMethodUnary, MessageShape } from "@bufbuild/protobuf";
import { Code, ConnectError, type Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import {
  ActiveHealthCheck,
  createPicker,
  type Endpoint,
  type EndpointAddress,
  EndpointPool,
  type PickerKind,
  type Resolver,
  systemClock,
} from "@quartet/balancer";
import { Upstream } from "./upstream.ts";

/** How one service is reached: set from flags or a JSON file (a registry resolver later). */
export interface RouteConfig {
  /** Fully qualified service name, e.g. quartet.worker.v1.WorkerService. */
  service: string;
  /** Where its endpoints come from: a static list now, the consensus registry later. */
  resolver: Resolver;
  picker: PickerKind;
  /** Request header whose value keys ring_hash / maglev picks. */
  hashHeader?: string;
  /** No call through this route lasts longer than this, whatever deadline the caller set. */
  timeoutMs: number;
  /** Active grpc.health.v1 checks of each endpoint (default true). */
  healthCheck?: boolean;
}

const windowSeconds = 10;
const latencySamples = 1024;

/** Per-endpoint figures the gateway keeps beside the pool's: recent latencies and rate. */
class EndpointFigures {
  readonly latencies = new Float64Array(latencySamples);
  count = 0;
  errors = 0;
  // Calls finished per second, for the last windowSeconds seconds (a ring by second).
  readonly #perSecond = new Float64Array(windowSeconds);
  readonly #second = new Float64Array(windowSeconds);

  record(ms: number, failed: boolean, now: number): void {
    this.latencies[this.count % latencySamples] = ms;
    this.count++;
    if (failed) this.errors++;
    const second = Math.floor(now / 1000);
    const slot = second % windowSeconds;
    if (this.#second[slot] !== second) {
      this.#second[slot] = second;
      this.#perSecond[slot] = 0;
    }
    this.#perSecond[slot]!++;
  }

  rps(now: number): number {
    const current = Math.floor(now / 1000);
    let calls = 0;
    for (let i = 0; i < windowSeconds; i++) {
      if (current - this.#second[i]! < windowSeconds) calls += this.#perSecond[i]!;
    }
    return calls / windowSeconds;
  }

  percentile(p: number): number {
    const n = Math.min(this.count, latencySamples);
    if (n === 0) return 0;
    const sorted = this.latencies.slice(0, n).sort();
    return sorted[Math.min(n - 1, Math.floor(p * n))]!;
  }
}

/** One service's endpoints: pool (picker, health, one breaker each), connections, figures. */
export class Route {
  readonly config: RouteConfig;
  readonly pool: EndpointPool;
  readonly #upstreams = new Map<Endpoint, Upstream>();
  readonly #transports = new Map<Endpoint, Transport>();
  readonly #checks = new Map<Endpoint, ActiveHealthCheck>();
  readonly #figures = new Map<string, EndpointFigures>();
  readonly #drained = new Set<string>();
  #resolved: readonly EndpointAddress[] = [];
  readonly #unsubscribe: () => void;

  constructor(config: RouteConfig) {
    this.config = config;
    this.pool = new EndpointPool({
      picker: createPicker(config.picker),
      onAdded: (endpoint) => {
        this.#upstreams.set(endpoint, new Upstream(endpoint.address));
        if (config.healthCheck === false) return;
        const transport = createGrpcTransport({ baseUrl: endpoint.address });
        const check = new ActiveHealthCheck(transport, {}, systemClock, (serving, reason) =>
          this.pool.setServing(endpoint, serving, reason),
        );
        this.#checks.set(endpoint, check);
        check.start();
      },
      onRemoved: (endpoint) => {
        void this.#checks.get(endpoint)?.stop();
        this.#checks.delete(endpoint);
        const upstream = this.#upstreams.get(endpoint);
        this.#upstreams.delete(endpoint);
        this.#transports.delete(endpoint);
        // Calls still running finish on their connection: close() lets them end.
        upstream?.close();
      },
    });
    this.#unsubscribe = config.resolver.subscribe((list) => {
      this.#resolved = list;
      this.#apply();
    });
  }

  upstream(endpoint: Endpoint): Upstream | undefined {
    return this.#upstreams.get(endpoint);
  }

  /**
   * One unary call (for the REST tier) on an endpoint of this route, retried elsewhere when
   * the method is idempotent and the endpoint is Unavailable.
   */
  async unary<I extends DescMessage, O extends DescMessage>(
    method: DescMethodUnary<I, O>,
    message: MessageShape<I>,
    headers: Headers,
    signal: AbortSignal,
    maxAttempts: number,
    idempotent: boolean,
  ): Promise<MessageShape<O>> {
    const tried = new Set<Endpoint>();
    let last: ConnectError | undefined;
    for (let attempt = 0; attempt < maxAttempts; attempt++) {
      const lease = this.pool.pick(undefined, tried);
      if (!lease) break;
      tried.add(lease.endpoint);
      let transport = this.#transports.get(lease.endpoint);
      if (!transport) {
        transport = createConnectTransport({ baseUrl: lease.endpoint.address, httpVersion: "2" });
        this.#transports.set(lease.endpoint, transport);
      }
      const started = performance.now();
      try {
        const res = await transport.unary(
          method,
          signal,
          this.config.timeoutMs,
          headers,
          message,
          undefined,
        );
        this.pool.release(lease);
        this.figures(lease.endpoint.id).record(performance.now() - started, false, Date.now());
        return res.message;
      } catch (e) {
        last = ConnectError.from(e);
        this.pool.release(lease, last);
        this.figures(lease.endpoint.id).record(performance.now() - started, true, Date.now());
        if (!(idempotent && last.code === Code.Unavailable)) throw last;
      }
    }
    throw (
      last ?? new ConnectError(`no healthy endpoint for ${this.config.service}`, Code.Unavailable)
    );
  }

  figures(id: string): EndpointFigures {
    let f = this.#figures.get(id);
    if (!f) {
      f = new EndpointFigures();
      this.#figures.set(id, f);
    }
    return f;
  }

  /** Stops new calls to an endpoint; its running calls finish. False when it is unknown. */
  drain(id: string, drained: boolean): boolean {
    if (!this.#resolved.some((a) => (a.id ?? a.address) === id)) return false;
    if (drained) this.#drained.add(id);
    else this.#drained.delete(id);
    this.#apply();
    return true;
  }

  isDrained(id: string): boolean {
    return this.#drained.has(id);
  }

  resolved(): readonly EndpointAddress[] {
    return this.#resolved;
  }

  #apply(): void {
    this.pool.setEndpoints(this.#resolved.filter((a) => !this.#drained.has(a.id ?? a.address)));
  }

  async close(): Promise<void> {
    this.#unsubscribe();
    await Promise.all([...this.#checks.values()].map((c) => c.stop()));
    for (const u of this.#upstreams.values()) u.close();
    this.pool.close();
  }
}
