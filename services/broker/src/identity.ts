import { createHash, timingSafeEqual } from "node:crypto";
import { readFileSync } from "node:fs";
import { Code, ConnectError, type HandlerContext } from "@connectrpc/connect";
import { z } from "zod";
import { type PermissionRules, Permissions } from "./authz.ts";

/** Who is calling, as the broker decided from the request's credentials. */
export interface Identity {
  /** Key of per-identity limits and of bound delivery ids and reply inboxes. */
  readonly key: string;
  /** For logs and error messages. */
  readonly name: string;
  readonly permissions: Permissions;
  readonly anonymous: boolean;
}

const ruleSet = z
  .object({ allow: z.array(z.string()).optional(), deny: z.array(z.string()).optional() })
  .strict();
const rules = z
  .object({ publish: ruleSet.optional(), subscribe: ruleSet.optional(), queue: ruleSet.optional() })
  .strict();
const credentialsFile = z
  .object({
    identities: z.array(
      z.object({ name: z.string().min(1), token: z.string().min(16), permissions: rules }).strict(),
    ),
    /** Permissions of clients without a token when the broker runs with --anonymous restricted. */
    anonymous: rules.optional(),
  })
  .strict();

/** What clients without credentials may do: everything (a local setup), nothing, or the file's `anonymous` rules. */
export type AnonymousAccess = "open" | "deny" | "restricted";

const digest = (token: string) => createHash("sha256").update(token).digest();

/**
 * Maps `Authorization: Bearer <token>` to identities. Every anonymous client shares one
 * identity (one limits budget): the `quartet-client-id` header is only a label, so changing
 * it gets no fresh budget. Holders of the cluster token are admins with every permission.
 */
export class Identities {
  private readonly byDigest: { digest: Buffer; identity: Identity }[] = [];
  private readonly anonymousIdentity: Identity | undefined;
  private readonly admin: Identity;
  private readonly clusterDigest: Buffer | undefined;

  constructor(options: {
    file?: string;
    anonymous: AnonymousAccess;
    clusterToken?: string | undefined;
  }) {
    let anonymousRules: PermissionRules | undefined;
    if (options.file) {
      const file = options.file;
      let json: unknown;
      try {
        json = JSON.parse(readFileSync(file, "utf8"));
      } catch (e) {
        throw new Error(`credentials file ${file}: ${(e as Error).message}`);
      }
      const parsed = credentialsFile.safeParse(json);
      if (!parsed.success) {
        throw new Error(`credentials file ${file}: ${z.prettifyError(parsed.error)}`);
      }
      for (const [i, entry] of parsed.data.identities.entries()) {
        const permissions = new Permissions(
          entry.permissions,
          `credentials file ${file}: identities[${i}].permissions`,
        );
        this.byDigest.push({
          digest: digest(entry.token),
          identity: { key: `id:${entry.name}`, name: entry.name, permissions, anonymous: false },
        });
      }
      anonymousRules = parsed.data.anonymous;
    }
    if (options.anonymous === "restricted" && !anonymousRules) {
      throw new Error("--anonymous restricted needs an `anonymous` section in --credentials-file");
    }
    const anon = (permissions: Permissions): Identity => ({
      key: "anonymous",
      name: "anonymous",
      permissions,
      anonymous: true,
    });
    this.anonymousIdentity =
      options.anonymous === "open"
        ? anon(Permissions.all())
        : options.anonymous === "restricted"
          ? anon(new Permissions(anonymousRules!, "credentials file: anonymous"))
          : undefined;
    this.admin = { key: "admin", name: "admin", permissions: Permissions.all(), anonymous: false };
    this.clusterDigest = options.clusterToken ? digest(options.clusterToken) : undefined;
  }

  /** The caller's identity; Unauthenticated for an unknown token or a refused anonymous client. */
  of(ctx: HandlerContext): Identity {
    const header = ctx.requestHeader.get("authorization");
    if (!header) {
      if (this.anonymousIdentity) return this.anonymousIdentity;
      throw new ConnectError(
        'this broker refuses anonymous clients: send "Authorization: Bearer <token>" with a token from its credentials file',
        Code.Unauthenticated,
      );
    }
    if (!header.startsWith("Bearer ")) {
      throw new ConnectError('authorization: use "Bearer <token>"', Code.Unauthenticated);
    }
    // Compare digests (equal lengths) in constant time, so timing does not reveal tokens.
    const presented = digest(header.slice(7));
    if (this.clusterDigest && timingSafeEqual(presented, this.clusterDigest)) {
      // The cluster token's holder is trusted: its labels split its budget (bench, tests),
      // and name it in logs as before.
      const label = ctx.requestHeader.get("quartet-client-id") ?? "admin";
      return {
        ...this.admin,
        key: label,
        name: `admin client ${JSON.stringify(label)}`,
      };
    }
    for (const { digest: d, identity } of this.byDigest) {
      if (timingSafeEqual(presented, d)) return identity;
    }
    throw new ConnectError(
      "authorization: the bearer token is not one of this broker's credentials",
      Code.Unauthenticated,
    );
  }
}

/** Identities for a broker process: a bad credentials file ends it with a message (exit 2). */
export function loadIdentities(
  options: ConstructorParameters<typeof Identities>[0],
  name: string,
): Identities {
  try {
    return new Identities(options);
  } catch (e) {
    process.stderr.write(`${name}: ${(e as Error).message}\n`);
    process.exit(2);
  }
}

/** Everyone is an open anonymous client: for brokers built in-process without credentials. */
export const openIdentities = (): Identities => new Identities({ anonymous: "open" });
