import type { Transport } from "@connectrpc/connect";
import { ConsensusClient, neverConnected } from "@quartet/consensus-service/client";
import type { Command } from "commander";
import { positiveInt } from "./args.ts";
import { checkUrl, transportFor } from "./connection.ts";
import { badArguments } from "./output.ts";

/** What every kv, lease and member command takes (see consensusOptions). */
export interface ConsensusOpts {
  endpoints: string;
  json?: boolean;
  timeout: number;
}

export const DEFAULT_ENDPOINTS =
  "http://127.0.0.1:7001,http://127.0.0.1:7002,http://127.0.0.1:7003";

/** Adds the shared options: --endpoints, --json, and --timeout (not on endless streams). */
export function consensusOptions(cmd: Command, { timeout = true } = {}): Command {
  cmd
    .option(
      "--endpoints <urls>",
      "consensus members, comma-separated (env QUARTET_ENDPOINTS)",
      process.env.QUARTET_ENDPOINTS ?? DEFAULT_ENDPOINTS,
    )
    .option("--json", "proto JSON on stdout, one object per line (bytes base64, int64 as strings)");
  if (timeout)
    cmd.option("--timeout <ms>", "deadline of each call", positiveInt("--timeout"), 10_000);
  return cmd;
}

export function endpointList(opts: { endpoints: string }): string[] {
  const urls = opts.endpoints
    .split(",")
    .map((u) => u.trim())
    .filter((u) => u !== "");
  if (urls.length === 0)
    throw badArguments("--endpoints is empty", `pass e.g. --endpoints ${DEFAULT_ENDPOINTS}`);
  return urls.map(checkUrl);
}

/**
 * The consensus client (leader-aware, retrying reads, resuming watches) over the CLI's
 * transport: Connect on HTTP/2 with the credential if set. A person is waiting, so two rounds
 * over the members with a short backoff, not the library's ten attempts up to a second apart,
 * before saying the cluster cannot be reached.
 */
export function consensusClient(opts: { endpoints: string }): ConsensusClient {
  const endpoints = endpointList(opts);
  return new ConsensusClient({
    endpoints,
    transport: transportFor,
    attempts: endpoints.length * 2,
    backoff: (n) => Math.min(400, 50 * 2 ** n),
  });
}

/**
 * Sends `call` to the members in turn, moving on only from one that could not be reached at
 * all. For writes and admin calls, which must not be repeated: a call that reached a member
 * may have been applied (members forward to the leader themselves), so any other failure is
 * the command's answer.
 */
export async function onFirstReachable<R>(
  opts: { endpoints: string },
  call: (transport: Transport) => Promise<R>,
): Promise<R> {
  let last: unknown;
  for (const url of endpointList(opts)) {
    try {
      return await call(transportFor(url));
    } catch (e) {
      if (!neverConnected(e)) throw e;
      last = e;
    }
  }
  throw last;
}
