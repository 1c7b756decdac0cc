import { createHash, timingSafeEqual } from "node:crypto";
import { Code, ConnectError, type HandlerContext } from "@connectrpc/connect";
import { callerAddress } from "../node/caller-address.ts";

/** etcd has no such limit; the broker allows 1,000 subscriptions per client. */
export const defaultMaxWatchesPerClient = 1000;

/** The header a trusted caller (one with the cluster credential) names its clients by. */
export const clientIdHeader = "quartet-client-id";

const digest = (s: string) => createHash("sha256").update(s).digest();

/**
 * Watch streams open at once per client, so one client cannot make a member hold unbounded
 * watchers (each holds a queue and is visited by every applied write). A client is its IP
 * address; a caller with the cluster credential (a gateway, a test) may split its budget
 * with the `quartet-client-id` header, as the broker's limits do. Anyone else's header is
 * ignored: changing it would otherwise buy a fresh budget.
 */
export class WatchLimits {
  private readonly max: number;
  private readonly token: Buffer | undefined;
  private readonly open = new Map<string, number>();

  constructor(options: { maxPerClient: number; clusterToken?: string | undefined }) {
    this.max = options.maxPerClient;
    this.token = options.clusterToken ? digest(`Bearer ${options.clusterToken}`) : undefined;
  }

  /** Who the caller is, for the limit and its message. */
  clientOf(ctx: HandlerContext): string {
    const label = ctx.requestHeader.get(clientIdHeader);
    if (label && this.trusted(ctx.requestHeader.get("authorization"))) {
      return `client ${JSON.stringify(label)}`;
    }
    return `client at ${ctx.values.get(callerAddress)}`;
  }

  /**
   * Counts one more watch of the caller, or refuses it with ResourceExhausted at the limit
   * (then nothing changes). Returns the release, to call once when the watch ends.
   */
  acquire(ctx: HandlerContext): () => void {
    const client = this.clientOf(ctx);
    const count = this.open.get(client) ?? 0;
    if (count >= this.max) {
      throw new ConnectError(
        `${client} already has ${count} watches open, the limit per client (--max-watches-per-client): watch a key range (key and range_end) instead of one watch per key, or end watches you no longer need`,
        Code.ResourceExhausted,
      );
    }
    this.open.set(client, count + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const left = (this.open.get(client) ?? 1) - 1;
      if (left === 0) this.open.delete(client);
      else this.open.set(client, left);
    };
  }

  private trusted(authorization: string | null): boolean {
    if (!authorization || !this.token) return false;
    // Equal-length digests compared in constant time: timing reveals nothing of the token.
    return timingSafeEqual(digest(authorization), this.token);
  }
}
