import { setTimeout as sleep } from "node:timers/promises";
import { createClient } from "@connectrpc/connect";
import {
  LeaseGrantResponseSchema,
  LeaseKeepAliveOnceResponseSchema,
  LeaseRevokeResponseSchema,
  LeaseService,
} from "@quartet/proto/quartet/consensus/v1/lease_pb";
import type { Command } from "commander";
import { interruptible, parseId } from "./args.ts";
import {
  type ConsensusOpts,
  consensusClient,
  consensusOptions,
  onFirstReachable,
} from "./consensus.ts";
import { colour, fail, printProto } from "./output.ts";

/** lease grant, keepalive and revoke. Lease ids are decimal, as in proto JSON. */
export function registerLeaseCommands(program: Command): void {
  const lease = program.command("lease").description("leases: grant, keepalive, revoke");

  consensusOptions(lease.command("grant"))
    .description("grant a lease; keys put with --lease <id> are deleted when it ends")
    .argument("<ttl>", "seconds the lease lives without a keepalive")
    .action(async (ttl: string, opts: ConsensusOpts) => {
      try {
        const seconds = parseId("<ttl>", ttl);
        const res = await onFirstReachable(opts, (t) =>
          createClient(LeaseService, t).leaseGrant({ ttl: seconds }, { timeoutMs: opts.timeout }),
        );
        if (opts.json) return printProto(LeaseGrantResponseSchema, res);
        console.log(`lease ${colour.cyan(String(res.id))} granted with TTL(${res.ttl}s)`);
      } catch (e) {
        fail(e, opts.endpoints);
      }
    });

  consensusOptions(lease.command("keepalive"))
    .description("renew a lease every third of its TTL until Ctrl-C (or once with --once)")
    .argument("<id>", "the lease id")
    .option("--once", "renew once and exit")
    .addHelpText(
      "after",
      "\nPrints each renewal. A lease that has expired or was revoked exits 1 (not_found).",
    )
    .action(async (idArg: string, opts: ConsensusOpts & { once?: boolean }) => {
      const abort = interruptible();
      try {
        const id = parseId("<id>", idArg);
        const client = consensusClient(opts);
        while (!abort.signal.aborted) {
          // A renewal is safe to repeat, so the client retries it on other members.
          const res = await client.retrying(
            (m) =>
              m.lease.leaseKeepAliveOnce({ id }, { timeoutMs: opts.timeout, signal: abort.signal }),
            abort.signal,
          );
          if (opts.json) printProto(LeaseKeepAliveOnceResponseSchema, res);
          else console.log(`lease ${colour.cyan(String(res.id))} keepalived with TTL(${res.ttl}s)`);
          if (opts.once) return;
          await sleep(Math.max(500, (Number(res.ttl) * 1000) / 3), undefined, {
            signal: abort.signal,
          });
        }
      } catch (e) {
        if (!abort.signal.aborted) fail(e, opts.endpoints);
      }
    });

  consensusOptions(lease.command("revoke"))
    .description("end a lease now, deleting every key attached to it")
    .argument("<id>", "the lease id")
    .action(async (idArg: string, opts: ConsensusOpts) => {
      try {
        const id = parseId("<id>", idArg);
        const res = await onFirstReachable(opts, (t) =>
          createClient(LeaseService, t).leaseRevoke({ id }, { timeoutMs: opts.timeout }),
        );
        if (opts.json) return printProto(LeaseRevokeResponseSchema, res);
        console.log(`lease ${colour.cyan(String(id))} revoked`);
      } catch (e) {
        fail(e, opts.endpoints);
      }
    });
}
