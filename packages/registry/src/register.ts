import { hostname } from "node:os";
import { setTimeout } from "node:timers/promises";
import { Code, ConnectError } from "@connectrpc/connect";
import type { RegistryClient } from "./client.ts";
import { encodeInstance, instanceKey } from "./instance.ts";

/** The subset of a pino logger registration writes to. */
export interface RegistryLogger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

export interface RegisterOptions {
  client: RegistryClient;
  /** Fully qualified proto service names this instance serves: one key each. */
  services: readonly string[];
  /** Base URL callers reach this instance at. */
  address: string;
  /** Default connect, grpc, grpc-web (what @quartet/server serves on every port). */
  protocols?: readonly string[];
  zone?: string;
  /** Integer >= 1 (default 1). */
  weight?: number;
  /** Default `<hostname>-<pid>`: unique per process. */
  instanceId?: string;
  version?: string;
  /** Lease TTL in seconds (default 10): how long a killed instance stays registered at most. */
  ttlSeconds?: number;
  logger?: RegistryLogger;
  /** Pause before registering again after a failure, ms (default 1000). */
  retryMs?: number;
}

export interface Registration {
  readonly instanceId: string;
  /** Resolves once every key is written (the first time). */
  readonly ready: Promise<void>;
  /** The lease the keys are under now (0n before the first grant). */
  leaseId(): bigint;
  /**
   * Deregisters: stops renewing and revokes the lease, which deletes every key of this
   * instance in one revision. Call it before draining, so balancers stop sending new calls.
   */
  close(): Promise<void>;
}

const defaultProtocols = ["connect", "grpc", "grpc-web"];

/**
 * Registers an instance: grants a lease of `ttlSeconds`, puts `/registry/<service>/<id>`
 * for each service under it, and renews it every third of the TTL (etcd's clientv3 rhythm).
 * When the lease is lost (it expired during a long partition, or was revoked) or renewals
 * keep failing, it registers again with a new lease, until close().
 */
export function register(options: RegisterOptions): Registration {
  const { client } = options;
  const ttlSeconds = options.ttlSeconds ?? 10;
  if (!Number.isInteger(ttlSeconds) || ttlSeconds < 1)
    throw new RangeError(`registry TTL must be a whole number of seconds >= 1, got ${ttlSeconds}`);
  const weight = options.weight ?? 1;
  if (!Number.isSafeInteger(weight) || weight < 1)
    throw new RangeError(`registry weight must be an integer >= 1, got ${weight}`);
  if (options.services.length === 0) throw new RangeError("register at least one service");
  const instanceId = options.instanceId ?? `${hostname()}-${process.pid}`;
  const entries = options.services.map((service) => ({
    key: new TextEncoder().encode(instanceKey(service, instanceId)),
    value: encodeInstance({
      service,
      instanceId,
      address: options.address,
      protocols: [...(options.protocols ?? defaultProtocols)],
      zone: options.zone ?? "",
      weight,
      version: options.version ?? "",
    }),
  }));
  const stop = new AbortController();
  let lease = 0n;
  let markReady: () => void = () => {};
  const ready = new Promise<void>((resolve) => {
    markReady = resolve;
  });
  const log = { instanceId, address: options.address, services: options.services };

  async function run(): Promise<void> {
    const signal = stop.signal;
    while (!signal.aborted) {
      try {
        const granted = await client.retrying(
          (m) => m.lease.leaseGrant({ ttl: BigInt(ttlSeconds) }, { signal }),
          signal,
        );
        lease = granted.id;
        // A Put of a fixed value under a fixed lease is safe to repeat on another member.
        for (const e of entries) {
          await client.retrying((m) => m.kv.put({ ...e, lease }, { signal }), signal);
        }
        options.logger?.info({ ...log, lease: String(lease), ttlSeconds }, "registered");
        markReady();
        await client.keepAlive(lease, (ttlSeconds * 1000) / 3, signal);
      } catch (e) {
        if (signal.aborted) return;
        const err = ConnectError.from(e);
        options.logger?.warn(
          { ...log, lease: String(lease), err: err.message },
          err.code === Code.NotFound
            ? "registration lease lost (expired or revoked): registering again"
            : "registry unreachable: registering again",
        );
        await setTimeout(options.retryMs ?? 1000, undefined, { signal }).catch(() => {});
      }
    }
  }
  const running = run();
  let closing: Promise<void> | undefined;

  return {
    instanceId,
    ready,
    leaseId: () => lease,
    close() {
      closing ??= deregister();
      return closing;
    },
  };

  async function deregister(): Promise<void> {
    stop.abort();
    await running;
    if (lease === 0n) return;
    const id = lease;
    // Bounded: a cluster that cannot be reached now lets the lease expire instead.
    const signal = AbortSignal.timeout(Math.min(2000, ttlSeconds * 1000));
    await client
      .retrying((m) => m.lease.leaseRevoke({ id }, { signal }), signal)
      .then(
        () => options.logger?.info(log, "deregistered"),
        (e: unknown) =>
          options.logger?.warn(
            { ...log, err: ConnectError.from(e).message },
            "deregistration failed: the keys go when the lease expires",
          ),
      );
  }
}
