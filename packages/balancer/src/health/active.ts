import { Code, ConnectError, createClient, type Transport } from "@connectrpc/connect";
import type { Clock } from "@quartet/determinism";
import { Health, HealthCheckResponse_ServingStatus } from "@quartet/proto/health/v1/health_pb";

/** Active health checking over grpc.health.v1. */
export interface HealthCheckOptions {
  /** Service name asked about; "" (default) means the server as a whole. */
  service?: string;
  /** Period of Check calls when the server does not offer Watch (default 5 s). */
  intervalMs?: number;
  /** Deadline of each Check call (default 1 s). */
  timeoutMs?: number;
  /** First wait before re-opening a failed Watch (default 1 s); doubles per failure. */
  retryBaseMs?: number;
  /** Longest wait before re-opening a failed Watch (default 30 s). */
  retryMaxMs?: number;
}

/** How an endpoint is being checked. */
export type HealthCheckMode = "watch" | "check" | "unsupported" | "stopped";

/**
 * Follows one endpoint's health. It opens `Health.Watch` and reports every status the server
 * streams; a Watch that fails marks the endpoint unhealthy and is re-opened after a growing
 * backoff. If the server answers Watch with Unimplemented it polls `Health.Check` instead. A
 * server without the health service at all (Check also Unimplemented) counts as healthy, as
 * gRPC clients do.
 */
export class ActiveHealthCheck {
  readonly #client;
  readonly #service: string;
  readonly #intervalMs: number;
  readonly #timeoutMs: number;
  readonly #retryBaseMs: number;
  readonly #retryMaxMs: number;
  readonly #clock: Clock;
  readonly #report: (serving: boolean, reason: string) => void;
  #mode: HealthCheckMode = "watch";
  #abort = new AbortController();
  #wake: (() => void) | undefined;
  #timer: unknown;
  #done: Promise<void> = Promise.resolve();

  constructor(
    transport: Transport,
    options: HealthCheckOptions,
    clock: Clock,
    report: (serving: boolean, reason: string) => void,
  ) {
    this.#client = createClient(Health, transport);
    this.#service = options.service ?? "";
    this.#intervalMs = options.intervalMs ?? 5_000;
    this.#timeoutMs = options.timeoutMs ?? 1_000;
    this.#retryBaseMs = options.retryBaseMs ?? 1_000;
    this.#retryMaxMs = options.retryMaxMs ?? 30_000;
    this.#clock = clock;
    this.#report = report;
  }

  get mode(): HealthCheckMode {
    return this.#mode;
  }

  start(): void {
    this.#done = this.#watchLoop();
  }

  /** Stops checking; resolves once the running call has ended. */
  async stop(): Promise<void> {
    this.#mode = "stopped";
    this.#abort.abort();
    if (this.#timer !== undefined) this.#clock.clearTimeout(this.#timer);
    this.#wake?.();
    await this.#done;
  }

  async #watchLoop(): Promise<void> {
    let failures = 0;
    while (this.#mode === "watch") {
      try {
        for await (const res of this.#client.watch(
          { service: this.#service },
          { signal: this.#abort.signal },
        )) {
          failures = 0;
          this.#report(
            res.status === HealthCheckResponse_ServingStatus.SERVING,
            `watch: ${HealthCheckResponse_ServingStatus[res.status]}`,
          );
        }
        if (this.#mode !== "watch") return;
        this.#report(false, "watch: stream ended by the server");
      } catch (e) {
        if (this.#mode !== "watch") return;
        const err = ConnectError.from(e);
        if (err.code === Code.Unimplemented) {
          this.#mode = "check";
          return this.#checkLoop();
        }
        this.#report(false, `watch failed: ${err.message}`);
      }
      await this.#sleep(Math.min(this.#retryMaxMs, this.#retryBaseMs * 2 ** failures++));
    }
  }

  async #checkLoop(): Promise<void> {
    while (this.#mode === "check") {
      try {
        const res = await this.#client.check(
          { service: this.#service },
          { signal: this.#abort.signal, timeoutMs: this.#timeoutMs },
        );
        if (this.#mode !== "check") return;
        this.#report(
          res.status === HealthCheckResponse_ServingStatus.SERVING,
          `check: ${HealthCheckResponse_ServingStatus[res.status]}`,
        );
      } catch (e) {
        if (this.#mode !== "check") return;
        const err = ConnectError.from(e);
        if (err.code === Code.Unimplemented) {
          this.#mode = "unsupported";
          this.#report(true, "server does not implement grpc.health.v1; assumed healthy");
          return;
        }
        this.#report(false, `check failed: ${err.message}`);
      }
      await this.#sleep(this.#intervalMs);
    }
  }

  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      this.#wake = resolve;
      this.#timer = this.#clock.setTimeout(() => {
        this.#timer = undefined;
        resolve();
      }, ms);
    });
  }
}
