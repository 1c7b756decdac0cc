import { createClient, type Transport } from "@connectrpc/connect";
import {
  ClusterService,
  type Member,
  MemberAddLearnerResponseSchema,
  MemberListResponseSchema,
  MemberPromoteResponseSchema,
  MemberRemoveResponseSchema,
} from "@quartet/proto/quartet/consensus/v1/cluster_pb";
import type { Command } from "commander";
import { parseId } from "./args.ts";
import { checkUrl } from "./connection.ts";
import { type ConsensusOpts, consensusOptions, onFirstReachable } from "./consensus.ts";
import { badArguments, colour, fail, printProto, printTable } from "./output.ts";

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
    .description("cluster membership: list, add (as a learner), promote, remove");

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
}
