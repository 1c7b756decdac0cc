import type { Logger } from "@quartet/server";
import type { CommandWriter } from "./commands.ts";
import type { ReplicatedState } from "./replicated-state.ts";

/**
 * The leader's side of leases. On winning an election it proposes PromoteLeases, giving
 * every lease a full TTL from now (etcd's rule: no lease expires because of an election);
 * then, while it leads, it proposes ExpireLeases whenever a lease's deadline has passed on
 * its clock. Followers do nothing: expiry is one decision, made once, through the log.
 */
export class LeaseKeeper {
  private readonly writer: CommandWriter;
  private readonly state: ReplicatedState;
  private readonly logger: Logger;
  private readonly nowMs: () => number;
  private readonly checkEveryMs: number;
  private timer: NodeJS.Timeout | undefined;
  private busy = false;

  constructor(options: {
    writer: CommandWriter;
    state: ReplicatedState;
    logger: Logger;
    nowMs?: () => number;
    checkEveryMs?: number;
  }) {
    this.writer = options.writer;
    this.state = options.state;
    this.logger = options.logger;
    this.nowMs = options.nowMs ?? Date.now;
    this.checkEveryMs = options.checkEveryMs ?? 250;
  }

  /** Call on every role change. */
  roleChanged(isLeader: boolean): void {
    if (!isLeader) {
      clearInterval(this.timer);
      this.timer = undefined;
      return;
    }
    if (this.timer) return;
    this.run(async () => {
      await this.writer.propose("promoteLeases", {});
    });
    this.timer = setInterval(() => this.expire(), this.checkEveryMs);
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  private expire(): void {
    const now = BigInt(this.nowMs());
    if (!this.state.current.leases().some((l) => l.deadlineMs <= now)) return;
    this.run(async () => {
      const r = await this.writer.propose("expireLeases", {});
      if (r.result.case === "expireLeases" && r.result.value.ids.length > 0)
        this.logger.info({ leases: r.result.value.ids.map(String) }, "leases expired");
    });
  }

  private run(fn: () => Promise<void>): void {
    if (this.busy) return;
    this.busy = true;
    fn()
      .catch((e: unknown) => this.logger.debug({ err: e }, "lease command not committed; retried"))
      .finally(() => {
        this.busy = false;
      });
  }
}
