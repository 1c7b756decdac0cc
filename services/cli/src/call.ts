import { type DescMethod, fromJson, type JsonValue, toJson } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import type { Command } from "commander";
import { transportFor } from "./connection.ts";
import { badArguments, CliError, Exit, fail, printJson } from "./output.ts";
import { fetchRegistry } from "./reflection.ts";

/** `call`: any unary or server-streaming method of any service, described by reflection. */
export function registerCallCommand(program: Command): void {
  program
    .command("call")
    .description("call any method of a Quartet service, described by gRPC reflection")
    .argument("<url>", "service base URL, e.g. http://127.0.0.1:7201")
    .argument("<method>", "package.Service/Method, e.g. quartet.worker.v1.WorkerService/Compute")
    .argument("[json]", "the request as JSON (proto3 JSON mapping)", "{}")
    .option("--timeout <ms>", "deadline for the call", "30000")
    .addHelpText(
      "after",
      "\nPrints the response as JSON; a server-streaming method prints one JSON per message.",
    )
    .action(async (url: string, method: string, json: string, opts: { timeout: string }) => {
      try {
        const match = /^([A-Za-z_][\w.]*)\.([A-Za-z_]\w*)\/([A-Za-z_]\w*)$/.exec(method);
        if (!match)
          throw badArguments(
            `method must be package.Service/Method, got "${method}"`,
            "e.g. quartet.worker.v1.WorkerService/Compute",
          );
        let body: JsonValue;
        try {
          body = JSON.parse(json) as JsonValue;
        } catch (e) {
          throw badArguments(`request is not JSON: ${(e as Error).message}`, "quote it, e.g. '{}'");
        }
        const timeoutMs = Number(opts.timeout);
        if (!Number.isInteger(timeoutMs) || timeoutMs <= 0)
          throw badArguments(`--timeout must be a positive integer`, "pass milliseconds");
        const serviceName = method.slice(0, method.indexOf("/"));
        const methodName = match[3];
        const transport = transportFor(url);
        const registry = await fetchRegistry(transport, serviceName);
        const service = registry.getService(serviceName);
        const desc: DescMethod | undefined = service?.methods.find((m) => m.name === methodName);
        if (!service || !desc)
          throw new CliError(
            `no method ${method} at ${url}`,
            "not_found",
            "list the service's methods with grpcurl or check the spelling",
            Exit.callFailed,
          );
        let request: ReturnType<typeof fromJson>;
        try {
          request = fromJson(desc.input, body, { registry });
        } catch (e) {
          throw badArguments(
            `request does not fit ${desc.input.typeName}: ${(e as Error).message}`,
            "fix the JSON field names and types",
          );
        }
        const client = createClient(service, transport) as unknown as Record<
          string,
          (req: unknown, o: { timeoutMs: number }) => unknown
        >;
        const call = client[desc.localName];
        const print = (msg: unknown) =>
          printJson(toJson(desc.output, msg as never, { registry, alwaysEmitImplicit: true }));
        switch (desc.methodKind) {
          case "unary":
            print(await (call(request, { timeoutMs }) as Promise<unknown>));
            break;
          case "server_streaming":
            for await (const msg of call(request, { timeoutMs }) as AsyncIterable<unknown>)
              print(msg);
            break;
          default:
            throw badArguments(
              `${method} is a ${desc.methodKind.replace("_", "-")} method`,
              "call only unary and server-streaming methods",
            );
        }
      } catch (e) {
        if (e instanceof ConnectError && e.code === Code.Unimplemented)
          fail(
            new CliError(
              e.rawMessage,
              "unimplemented",
              "check the method name and URL",
              Exit.callFailed,
            ),
            url,
          );
        fail(e, url);
      }
    });
}
