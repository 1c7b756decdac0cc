import type { CircuitBreaker, Permit } from "@quartet/breaker";
import { type Clock, systemClock } from "@quartet/determinism";
import {
  createEndpoint,
  type Endpoint,
  type EndpointAddress,
  setEndpointWeight,
} from "./endpoint.ts";
import { type OutlierDetectionOptions, OutlierDetector } from "./health/outlier.ts";
import type { Picker } from "./pickers/picker.ts";

export interface EndpointPoolOptions {
  picker: Picker;
  /**
   * Envoy's panic threshold, in [0, 1] (default 0.5): when fewer than this share of the
   * endpoints are healthy, health is ignored and calls spread over all of them, because
   * piling everything onto the few survivors would take them down too.
   */
  panicThreshold?: number;
  /** Passive outlier detection; `false` turns it off. Defaults as in `OutlierDetectionOptions`. */
  outlierDetection?: OutlierDetectionOptions | false;
  /** Smoothing factor of the latency EWMA, in (0, 1] (default 0.2: the last call weighs 20%). */
  latencyAlpha?: number;
  clock?: Clock;
  /** Called after an endpoint joins (from the resolver). */
  onAdded?: (endpoint: Endpoint) => void;
  /** Called after an endpoint leaves; calls still running on it finish normally. */
  onRemoved?: (endpoint: Endpoint) => void;
}

/** One call's claim on an endpoint, returned by `pick` and handed back to `release`. */
export interface Lease {
  readonly endpoint: Endpoint;
  /** The endpoint breaker's permit; absent when outlier detection is off or in panic mode. */
  readonly permit: Permit | undefined;
  readonly startedAt: number;
}

/** Per-endpoint figures, see `EndpointPool.stats()`. */
export interface EndpointStats {
  readonly id: string;
  readonly address: string;
  readonly weight: number;
  readonly healthy: boolean;
  /** Active health check verdict: true (serving), false, or undefined before the first. */
  readonly serving: boolean | undefined;
  readonly servingReason: string;
  readonly ejected: boolean;
  readonly ejections: number;
  readonly inFlight: number;
  /** Calls finished, successful or not. */
  readonly total: number;
  readonly failures: number;
  /** Exponentially weighted moving average of call latency, ms (0 before any call). */
  readonly latencyEwmaMs: number;
}

interface Tracked {
  serving: boolean | undefined;
  servingReason: string;
  total: number;
  failures: number;
  latencyEwmaMs: number;
}

/**
 * The endpoints of one balanced target: membership from a resolver, health from active
 * checks (`setServing`) and outlier detection, the panic threshold, and the picker that
 * chooses among them. Structures are rebuilt only when one of those changes.
 */
export class EndpointPool {
  #picker: Picker;
  readonly #panicThreshold: number;
  readonly #alpha: number;
  readonly #clock: Clock;
  readonly #outliers: OutlierDetector | undefined;
  readonly #onAdded: ((endpoint: Endpoint) => void) | undefined;
  readonly #onRemoved: ((endpoint: Endpoint) => void) | undefined;
  readonly #byId = new Map<string, Endpoint>();
  readonly #tracked = new Map<Endpoint, Tracked>();
  readonly #listeners = new Set<() => void>();
  #list: Endpoint[] = [];
  #eligible: Endpoint[] = [];
  #panic = false;

  constructor(options: EndpointPoolOptions) {
    this.#picker = options.picker;
    this.#panicThreshold = options.panicThreshold ?? 0.5;
    if (!(this.#panicThreshold >= 0 && this.#panicThreshold <= 1))
      throw new RangeError(`panicThreshold must be in [0, 1], got ${this.#panicThreshold}`);
    this.#alpha = options.latencyAlpha ?? 0.2;
    this.#clock = options.clock ?? systemClock;
    this.#onAdded = options.onAdded;
    this.#onRemoved = options.onRemoved;
    if (options.outlierDetection !== false) {
      this.#outliers = new OutlierDetector(options.outlierDetection ?? {}, this.#clock, () =>
        this.#rebuild(),
      );
    }
  }

  get picker(): Picker {
    return this.#picker;
  }

  /**
   * Switches the picker at runtime. Calls running finish normally: in-flight counts live on the
   * endpoints, which every picker shares.
   */
  setPicker(picker: Picker): void {
    this.#picker = picker;
    this.#rebuild();
  }

  /** An endpoint's circuit breaker (passive outlier detection); undefined when that is off. */
  breaker(endpoint: Endpoint): CircuitBreaker | undefined {
    return this.#outliers?.state(endpoint)?.breaker;
  }

  /** The failure share that ejects an endpoint; 0 when that rule (or detection) is off. */
  get failureThreshold(): number {
    return this.#outliers?.failureThreshold ?? 0;
  }

  /** True while too few endpoints are healthy and health is ignored. */
  get panic(): boolean {
    return this.#panic;
  }

  endpoints(): readonly Endpoint[] {
    return this.#list;
  }

  get(id: string): Endpoint | undefined {
    return this.#byId.get(id);
  }

  /**
   * Applies a resolver update. Endpoints keep their identity (and in-flight counts) across
   * updates; removed ones stop receiving new calls while their running calls finish.
   */
  setEndpoints(addresses: readonly EndpointAddress[]): void {
    // Validate the whole update first (weights, URLs), so a bad entry changes nothing.
    for (const a of addresses) createEndpoint(a);
    const next = new Map<string, EndpointAddress>();
    for (const a of addresses) next.set(a.id ?? a.address, a);
    const removed: Endpoint[] = [];
    const added: Endpoint[] = [];
    for (const [id, endpoint] of this.#byId) {
      if (!next.has(id)) {
        this.#byId.delete(id);
        this.#tracked.delete(endpoint);
        this.#outliers?.remove(endpoint);
        removed.push(endpoint);
      }
    }
    for (const [id, address] of next) {
      const existing = this.#byId.get(id);
      if (existing) {
        if (existing.address !== address.address)
          throw new Error(`endpoint ${id} changed address; give it a new id instead`);
        setEndpointWeight(existing, address.weight ?? 1);
        continue;
      }
      const endpoint = createEndpoint(address);
      this.#byId.set(id, endpoint);
      this.#tracked.set(endpoint, {
        serving: undefined,
        servingReason: "not checked yet",
        total: 0,
        failures: 0,
        latencyEwmaMs: 0,
      });
      this.#outliers?.add(endpoint);
      added.push(endpoint);
    }
    this.#list = [...this.#byId.values()];
    this.#rebuild();
    for (const endpoint of removed) this.#onRemoved?.(endpoint);
    for (const endpoint of added) this.#onAdded?.(endpoint);
  }

  /**
   * Calls `listener` after every change of membership, health or panic state; returns a
   * function that stops it.
   */
  onChange(listener: () => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Records an active health check verdict for an endpoint. */
  setServing(endpoint: Endpoint, serving: boolean, reason: string): void {
    const tracked = this.#tracked.get(endpoint);
    if (!tracked) return;
    tracked.servingReason = reason;
    if (tracked.serving === serving) return;
    const recovered = serving && tracked.serving === false;
    tracked.serving = serving;
    // A passing check after a failing one also ends any ejection: the endpoint is back.
    if (recovered) this.#outliers?.forgive(endpoint);
    this.#rebuild();
  }

  /**
   * Chooses an endpoint for a call and claims it, skipping `exclude` (endpoints this call
   * already tried) and endpoints whose breaker takes no call now. Returns undefined when no
   * endpoint can take the call.
   */
  pick(hash?: number, exclude?: ReadonlySet<Endpoint>): Lease | undefined {
    const tries = this.#eligible.length;
    for (let attempt = 0; attempt < tries; attempt++) {
      // A retry of a keyed call probes the ring elsewhere, like Envoy's rehash on retry.
      const h = hash === undefined || attempt === 0 ? hash : mix32(hash + attempt);
      const endpoint = this.#picker.pick(h);
      if (!endpoint) return undefined;
      if (exclude?.has(endpoint)) continue;
      const lease = this.#claim(endpoint);
      if (lease) return lease;
    }
    for (const endpoint of this.#eligible) {
      if (exclude?.has(endpoint)) continue;
      const lease = this.#claim(endpoint);
      if (lease) return lease;
    }
    return undefined;
  }

  /** Ends a call claimed by `pick`: `error` undefined means success. */
  release(lease: Lease, error?: unknown, countsAsFailure = error !== undefined): void {
    const { endpoint, permit } = lease;
    this.#picker.callEnded(endpoint);
    const tracked = this.#tracked.get(endpoint);
    if (tracked) {
      const latency = this.#clock.now() - lease.startedAt;
      tracked.total++;
      if (countsAsFailure) tracked.failures++;
      tracked.latencyEwmaMs =
        tracked.total === 1
          ? latency
          : tracked.latencyEwmaMs + this.#alpha * (latency - tracked.latencyEwmaMs);
    }
    if (permit) {
      if (error === undefined) permit.success();
      else permit.failure(error);
    }
  }

  /** A snapshot of every endpoint's figures. */
  stats(): EndpointStats[] {
    return this.#list.map((endpoint) => {
      const t = this.#tracked.get(endpoint)!;
      const outlier = this.#outliers?.state(endpoint);
      return {
        id: endpoint.id,
        address: endpoint.address,
        weight: endpoint.weight,
        healthy: endpoint.healthy,
        serving: t.serving,
        servingReason: t.servingReason,
        ejected: outlier?.ejected ?? false,
        ejections: outlier?.ejections ?? 0,
        inFlight: endpoint.inFlight,
        total: t.total,
        failures: t.failures,
        latencyEwmaMs: t.latencyEwmaMs,
      };
    });
  }

  close(): void {
    this.#outliers?.close();
  }

  #claim(endpoint: Endpoint): Lease | undefined {
    let permit: Permit | undefined;
    if (this.#outliers) {
      permit = this.#outliers.acquire(endpoint);
      // In panic every endpoint takes calls, whatever its breaker says.
      if (!permit && !this.#panic) return undefined;
    }
    this.#picker.callStarted(endpoint);
    return { endpoint, permit, startedAt: this.#clock.now() };
  }

  #rebuild(): void {
    let healthy = 0;
    for (const endpoint of this.#list) {
      const serving = this.#tracked.get(endpoint)?.serving;
      endpoint.healthy = serving !== false && !(this.#outliers?.isEjected(endpoint) ?? false);
      if (endpoint.healthy) healthy++;
    }
    const total = this.#list.length;
    this.#panic = total > 0 && healthy < this.#panicThreshold * total;
    this.#eligible = this.#panic ? [...this.#list] : this.#list.filter((e) => e.healthy);
    this.#picker.update(this.#list, this.#panic);
    for (const listener of this.#listeners) listener();
  }
}

/** murmur3's 32-bit finaliser: spreads a retry's hash over the whole ring. */
function mix32(h: number): number {
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}
