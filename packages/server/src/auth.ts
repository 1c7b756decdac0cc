import { timingSafeEqual } from "node:crypto";
import { Code, ConnectError, type HandlerContext } from "@connectrpc/connect";

/** Which procedures need the cluster credential, e.g. every method of a Raft peer service. */
export interface AuthOptions {
  /** The shared secret; when absent, protected procedures are refused to everyone. */
  token: string | undefined;
  /** True for procedures (`/package.Service/Method`) that are internal or admin. */
  protects: (procedure: string) => boolean;
}

/**
 * A request gate (runs before the body is read) that lets a protected procedure through only
 * with `Authorization: Bearer <cluster token>`. Public procedures pass untouched.
 */
export function createAuthGate(options: AuthOptions): (ctx: HandlerContext) => void {
  const expected = options.token === undefined ? undefined : Buffer.from(options.token);
  return (ctx) => {
    const procedure = `/${ctx.service.typeName}/${ctx.method.name}`;
    if (!options.protects(procedure)) return;
    if (expected === undefined) {
      throw new ConnectError(
        `${procedure} is an internal method and this server has no cluster credential configured (set QUARTET_CLUSTER_TOKEN)`,
        Code.Unauthenticated,
      );
    }
    const header = ctx.requestHeader.get("authorization") ?? "";
    const presented = Buffer.from(header.startsWith("Bearer ") ? header.slice(7) : "");
    if (presented.length !== expected.length || !timingSafeEqual(presented, expected)) {
      throw new ConnectError(
        `${procedure} needs the cluster credential: send "Authorization: Bearer <token>"`,
        Code.Unauthenticated,
      );
    }
  };
}
