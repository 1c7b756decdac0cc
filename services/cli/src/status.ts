import { createClient } from "@connectrpc/connect";
import {
  Health,
  HealthCheckResponse_ServingStatus as Serving,
} from "@quartet/proto/health/v1/health_pb";
import type { Command } from "commander";
import { transportFor } from "./connection.ts";
import {
  badArguments,
  codeName,
  colour,
  Exit,
  fail,
  printJson,
  printTable,
  progress,
  toCliError,
} from "./output.ts";

/** The suite's default ports (DESIGN.md's table). */
export const DEFAULT_TARGETS = [
  ["consensus-1", "http://127.0.0.1:7001"],
  ["consensus-2", "http://127.0.0.1:7002"],
  ["consensus-3", "http://127.0.0.1:7003"],
  ["broker", "http://127.0.0.1:7100"],
  ["worker-1", "http://127.0.0.1:7201"],
  ["worker-2", "http://127.0.0.1:7202"],
  ["worker-3", "http://127.0.0.1:7203"],
  ["gateway", "http://127.0.0.1:8080"],
] as const;

interface TargetStatus {
  name: string;
  url: string;
  status: "SERVING" | "NOT_SERVING" | "UNKNOWN" | "UNREACHABLE" | "ERROR";
  error?: string;
}

function parseTargets(list: string): [string, string][] {
  return list
    .split(",")
    .filter((t) => t.trim() !== "")
    .map((t) => {
      const [name, url] = t.includes("=") ? t.split("=", 2) : [t, t];
      if (!/^https?:\/\//.test(url))
        throw badArguments(`not a target URL: "${t}"`, "use name=http://host:port,...");
      return [name.trim(), url.trim()];
    });
}

async function check(name: string, url: string, timeoutMs: number): Promise<TargetStatus> {
  try {
    const res = await createClient(Health, transportFor(url)).check({ service: "" }, { timeoutMs });
    const status =
      res.status === Serving.SERVING
        ? "SERVING"
        : res.status === Serving.NOT_SERVING
          ? "NOT_SERVING"
          : "UNKNOWN";
    return { name, url, status };
  } catch (e) {
    const err = toCliError(e, url);
    if (err.exitCode === Exit.unreachable) return { name, url, status: "UNREACHABLE" };
    return { name, url, status: "ERROR", error: `${err.what} (${err.code})` };
  }
}

export function registerStatusCommand(program: Command): void {
  program
    .command("status")
    .description("health of every service of the suite (grpc.health.v1 Check)")
    .option(
      "--targets <list>",
      "name=url,... instead of the default ports 7001-7003, 7100, 7201-7203, 8080",
    )
    .option("--timeout <ms>", "deadline per check", "2000")
    .option("--json", "one JSON array on stdout")
    .addHelpText(
      "after",
      "\nExits 0 when every target is SERVING, 3 when any is unreachable, else 1.",
    )
    .action(async (opts: { targets?: string; timeout: string; json?: boolean }) => {
      try {
        const targets = opts.targets
          ? parseTargets(opts.targets)
          : DEFAULT_TARGETS.map(([n, u]) => [n, u] as [string, string]);
        const timeoutMs = Number(opts.timeout);
        if (!Number.isInteger(timeoutMs) || timeoutMs <= 0)
          throw badArguments("--timeout must be a positive integer", "pass milliseconds");
        progress(`checking ${targets.length} services`);
        const results = await Promise.all(targets.map(([n, u]) => check(n, u, timeoutMs)));
        if (opts.json) printJson(results);
        else
          printTable(
            ["SERVICE", "URL", "STATUS"],
            results.map((r) => [
              r.name,
              r.url,
              r.status === "SERVING"
                ? colour.green(r.status)
                : colour.red(r.error ? `${r.status}: ${r.error}` : r.status),
            ]),
          );
        process.exitCode = results.every((r) => r.status === "SERVING")
          ? Exit.ok
          : results.some((r) => r.status === "UNREACHABLE")
            ? Exit.unreachable
            : Exit.callFailed;
      } catch (e) {
        fail(e, "the suite");
      }
    });
}
export { codeName };
