import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, type ServiceImpl } from "@connectrpc/connect";
import {
  type Health,
  type HealthCheckResponse,
  HealthCheckResponseSchema,
  HealthListResponseSchema,
  HealthCheckResponse_ServingStatus as Status,
} from "@quartet/proto/health/v1/health_pb";

export { Status as ServingStatus };

/** Hears each new status; `null` means the registry shut down and the stream should end. */
type Listener = (status: Status | null) => void;

/**
 * Serving status per service name, as grpc.health.v1 reports it. The empty name stands for the
 * whole server. Watchers hear every change; shutdown marks everything NOT_SERVING and ends them.
 */
export class HealthRegistry {
  private readonly statuses = new Map<string, Status>();
  private readonly listeners = new Map<string, Set<Listener>>();
  private closed = false;

  constructor(serviceNames: Iterable<string>) {
    this.statuses.set("", Status.SERVING);
    for (const name of serviceNames) this.statuses.set(name, Status.SERVING);
  }

  /** Sets one service's status (or the whole server's with ""); unknown names are added. */
  set(service: string, status: Status): void {
    if (this.statuses.get(service) === status) return;
    this.statuses.set(service, status);
    for (const listener of this.listeners.get(service) ?? []) listener(status);
  }

  /** Every service name the registry knows, "" (the whole server) first. */
  names(): Iterable<string> {
    return this.statuses.keys();
  }

  get(service: string): Status | undefined {
    return this.statuses.get(service);
  }

  /** Marks every service NOT_SERVING; the Watch streams report it and then end. */
  shutdown(): void {
    for (const service of this.statuses.keys()) this.set(service, Status.NOT_SERVING);
    this.closed = true;
    for (const set of this.listeners.values()) for (const listener of set) listener(null);
  }

  /** The grpc.health.v1.Health implementation backed by this registry. */
  service(): ServiceImpl<typeof Health> {
    return {
      check: (req) => {
        const status = this.statuses.get(req.service);
        if (status === undefined) {
          throw new ConnectError(`unknown service "${req.service}"`, Code.NotFound);
        }
        return { status };
      },
      list: () =>
        create(HealthListResponseSchema, {
          statuses: Object.fromEntries(
            [...this.statuses].map(([name, status]) => [
              name,
              create(HealthCheckResponseSchema, { status }),
            ]),
          ),
        }),
      watch: (req, ctx) => this.watch(req.service, ctx.signal),
    };
  }

  private async *watch(service: string, signal: AbortSignal): AsyncGenerator<HealthCheckResponse> {
    // Queue every change so a watcher never misses the last status before the stream ends.
    const pending: (Status | null)[] = [this.statuses.get(service) ?? Status.SERVICE_UNKNOWN];
    let wake: (() => void) | undefined;
    const listener: Listener = (status) => {
      pending.push(status);
      wake?.();
    };
    const onAbort = () => wake?.();
    let set = this.listeners.get(service);
    if (!set) {
      set = new Set();
      this.listeners.set(service, set);
    }
    set.add(listener);
    signal.addEventListener("abort", onAbort);
    try {
      while (!signal.aborted) {
        if (pending.length === 0) {
          if (this.closed) return;
          await new Promise<void>((resolve) => {
            wake = resolve;
          });
          wake = undefined;
          continue;
        }
        const status = pending.shift()!;
        if (status === null) return;
        yield create(HealthCheckResponseSchema, { status });
      }
    } finally {
      set.delete(listener);
      signal.removeEventListener("abort", onAbort);
    }
  }
}
