import { Command, CommanderError } from "commander";
import { registerBrokerCommands } from "./broker.ts";
import { registerCallCommand } from "./call.ts";
import { setClusterTokenFile } from "./connection.ts";
import { registerKvCommands } from "./kv.ts";
import { registerLeaseCommands } from "./lease.ts";
import { registerMemberCommands } from "./member.ts";
import { CliError, Exit, fail } from "./output.ts";
import { registerStatusCommand } from "./status.ts";

/** `quartet`: each command family is one module with a `register...(program)` function. */
const program = new Command("quartet")
  .description(
    "Drive a Quartet suite: the consensus KV, leases and members, broker messaging, any method via reflection, status",
  )
  .option(
    "--cluster-token-file <path>",
    "read the cluster credential from this file (else QUARTET_CLUSTER_TOKEN or QUARTET_CLUSTER_TOKEN_FILE)",
  )
  .configureHelp({ showGlobalOptions: true })
  .addHelpText(
    "after",
    "\nExit codes: 0 ok, 1 the call failed (Connect code named), 2 bad arguments, 3 unreachable.\n" +
      "Admin calls send the credential from --cluster-token-file, QUARTET_CLUSTER_TOKEN or the file\n" +
      "QUARTET_CLUSTER_TOKEN_FILE names (never from argv).",
  )
  .hook("preAction", (_program, action) => {
    setClusterTokenFile(action.optsWithGlobals().clusterTokenFile);
  })
  .showHelpAfterError(false);

registerKvCommands(program);
registerLeaseCommands(program);
registerMemberCommands(program);
registerBrokerCommands(program);
registerCallCommand(program);
registerStatusCommand(program);

// Bad arguments become the one-line error and exit code 2 on every subcommand (commander's
// own error text is silenced; the help a group prints when its subcommand is missing is not).
function oneLineErrors(cmd: Command): void {
  cmd.exitOverride().configureOutput({ outputError: () => {} });
  for (const sub of cmd.commands) oneLineErrors(sub);
}
oneLineErrors(program);

try {
  await program.parseAsync(process.argv);
  // An HTTP/2 session stays open (idle) after the last call; the command is done, so leave.
  process.exit(process.exitCode ?? Exit.ok);
} catch (e) {
  if (e instanceof CommanderError) {
    if (e.exitCode === 0 || e.code === "commander.helpDisplayed" || e.code === "commander.version")
      process.exit(0);
    // A group without its subcommand (`quartet kv`): its help went to stderr; a usage error.
    if (e.code === "commander.help") process.exit(Exit.badArguments);
    fail(
      new CliError(
        e.message.replace(/^error: /, "").split("\n")[0],
        "invalid_argument",
        "see quartet --help",
        Exit.badArguments,
      ),
      "",
    );
  }
  fail(e, "");
}
