import { createClient, type Transport } from "@connectrpc/connect";
import {
  ClusterService,
  MaintenanceService,
  type Member,
  MemberAddLearnerResponseSchema,
  MemberListResponseSchema,
  MemberPromoteResponseSchema,
  MemberRemoveResponseSchema,
} from "@quartet/proto/quartet/consensus/v1/cluster_pb";
import type { Command } from "commander";
import { parseId } from "./args.ts";
import { checkUrl, transportFor } from "./connection.ts";
import {
  type ConsensusOpts,
  consensusOptions,
  endpointList,
  onFirstReachable,
} from "./consensus.ts";
import { badArguments, colour, Exit, fail, printJson, printProto, printTable } from "./output.ts";

const cluster = (t: Transport) => createClient(ClusterService, t);

function printMembers(members: Member[]): void {
  printTable(
    ["ID", "NAME", "PEER URLS", "CLIENT URLS", "LEARNER"],
    members.map((m) => [
      String(m.id),
      m.name,
      m.peerUrls.join(","),
      m.clientUrls.join(","),
      m.isLearner ? colour.yellow("true") : "false",
    ]),
  );
}

/**
 * member list, add, promote and remove (ClusterService). Admin calls: the cluster credential
 * from QUARTET_CLUSTER_TOKEN or --cluster-token-file goes on every call.
 */
export function registerMemberCommands(program: Command): void {
  const member = program
    .command("member")
    .description("cluster membership: list, add (as a learner), promote, remove, check");

  consensusOptions(member.command("list"))
    .description("every member: id, name, URLs, learner or voter")
    .action(async (opts: ConsensusOpts) => {
      try {
        const res = await onFirstReachable(opts, (t) =>
          cluster(t).memberList({}, { timeoutMs: opts.timeout }),
        );
        if (opts.json) return printProto(MemberListResponseSchema, res);
        printMembers(res.members);
      } catch (e) {
        fail(e, opts.endpoints);
      }
    });

  consensusOptions(member.command("add"))
    .description("add a member as a learner (it catches up without voting; then promote it)")
    .argument("<name>", "a name for the new member, used in the printed start command")
    .requiredOption(
      "--peer-url <url>",
      "where the other members reach the new one (several: comma-separated)",
    )
    .option("--learner", "add as a learner (required: voters are made by member promote)")
    .addHelpText(
      "after",
      "\nPrints the new member's id and how to start it (with --join true and the full --peers).",
    )
    .action(async (name: string, opts: ConsensusOpts & { peerUrl: string; learner?: boolean }) => {
      try {
        const peerUrls = opts.peerUrl.split(",").map(checkUrl);
        if (!opts.learner)
          throw badArguments(
            "a member joins as a learner first",
            "pass --learner, then quartet member promote <id> once it has caught up",
          );
        const res = await onFirstReachable(opts, (t) =>
          cluster(t).memberAddLearner({ peerUrls }, { timeoutMs: opts.timeout }),
        );
        if (opts.json) return printProto(MemberAddLearnerResponseSchema, res);
        const id = String(res.member?.id ?? "?");
        const peers = res.members
          .map((m) => `${m.id}=${m.peerUrls[0] ?? ""}`)
          .filter((p) => !p.endsWith("="))
          .join(",");
        console.log(`member ${colour.cyan(id)} (${name}) added as a learner`);
        console.log(
          `start it: npx node services/consensus/src/main.ts --id ${id} --join true --peers ${peers} --data-dir <dir>`,
        );
      } catch (e) {
        fail(e, opts.endpoints);
      }
    });

  consensusOptions(member.command("promote"))
    .description("make a learner that has caught up a voting member")
    .argument("<id>", "the learner's member id")
    .action(async (idArg: string, opts: ConsensusOpts) => {
      try {
        const id = parseId("<id>", idArg);
        const res = await onFirstReachable(opts, (t) =>
          cluster(t).memberPromote({ id }, { timeoutMs: opts.timeout }),
        );
        if (opts.json) return printProto(MemberPromoteResponseSchema, res);
        console.log(`member ${colour.cyan(String(id))} promoted to voter`);
      } catch (e) {
        fail(e, opts.endpoints);
      }
    });

  consensusOptions(member.command("remove"))
    .description("remove a member from the cluster (it stops serving)")
    .argument("<id>", "the member id")
    .action(async (idArg: string, opts: ConsensusOpts) => {
      try {
        const id = parseId("<id>", idArg);
        const res = await onFirstReachable(opts, (t) =>
          cluster(t).memberRemove({ id }, { timeoutMs: opts.timeout }),
        );
        if (opts.json) return printProto(MemberRemoveResponseSchema, res);
        console.log(`member ${colour.cyan(String(id))} removed`);
      } catch (e) {
        fail(e, opts.endpoints);
      }
    });

  consensusOptions(member.command("check"))
    .description(
      "compare the members' data: each member's HashKV at one revision, the lowest every member has applied",
    )
    .addHelpText(
      "after",
      "\nExits 0 when every member gives the same hash, 1 when they differ, 3 when one cannot be reached.",
    )
    .action(async (opts: ConsensusOpts) => {
      try {
        const urls = endpointList(opts);
        const hashKV = (url: string, revision = 0n) =>
          createClient(MaintenanceService, transportFor(url)).hashKV(
            { revision },
            { timeoutMs: opts.timeout },
          );
        const current = await Promise.all(urls.map((url) => hashKV(url)));
        const revision = current.map((r) => r.hashRevision).reduce((a, b) => (b < a ? b : a));
        const hashes = await Promise.all(urls.map((url) => hashKV(url, revision)));
        const agree = new Set(hashes.map((h) => h.hash)).size === 1;
        process.exitCode = agree ? Exit.ok : Exit.callFailed;
        const rows = hashes.map((h, i) => ({
          member: String(h.header?.memberId ?? ""),
          url: urls[i]!,
          revision: String(h.hashRevision),
          hash: h.hash,
          compactRevision: String(h.compactRevision),
        }));
        if (opts.json) return printJson({ agree, revision: String(revision), members: rows });
        printTable(
          ["MEMBER", "URL", "REVISION", "HASH", "COMPACTED AT"],
          rows.map((r) => [r.member, r.url, r.revision, String(r.hash), r.compactRevision]),
        );
        console.log(
          agree
            ? colour.green(`the ${rows.length} members agree at revision ${revision}`)
            : colour.red(
                `the members differ at revision ${revision}: a member whose hash is not the others' holds different data`,
              ),
        );
      } catch (e) {
        fail(e, opts.endpoints);
      }
    });
}
