import { type DescMessage, type MessageShape, toJson } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import pc from "picocolors";

/** Exit codes a script can rely on (documented in the README). */
export const Exit = { ok: 0, callFailed: 1, badArguments: 2, unreachable: 3 } as const;

/** An error the CLI reports as one line and a chosen exit code. */
export class CliError extends Error {
  readonly what: string;
  readonly code: string;
  readonly hint: string;
  readonly exitCode: number;
  constructor(what: string, code: string, hint: string, exitCode: number) {
    super(what);
    this.what = what;
    this.code = code;
    this.hint = hint;
    this.exitCode = exitCode;
  }
}

export function badArguments(what: string, hint: string): CliError {
  return new CliError(what, "invalid_argument", hint, Exit.badArguments);
}

/** Colours only on a TTY, never with NO_COLOR. */
export const colour = pc.createColors(
  Boolean(process.stdout.isTTY) && !("NO_COLOR" in process.env),
);

/** Connect code in its wire spelling ("not_found"), as the error line names it. */
export function codeName(code: Code): string {
  return Code[code].replace(/([a-z])([A-Z])/g, "$1_$2").toLowerCase();
}

/** Turns any failure into the CLI's error: a Connect error keeps its code. */
export function toCliError(e: unknown, target: string): CliError {
  if (e instanceof CliError) return e;
  const err = ConnectError.from(e);
  const message = err.rawMessage.split("\n")[0];
  if (isUnreachable(err)) {
    return new CliError(
      `cannot reach ${target}`,
      codeName(Code.Unavailable),
      "check the URL and that the service is running (quartet status)",
      Exit.unreachable,
    );
  }
  return new CliError(message, codeName(err.code), hintFor(err.code), Exit.callFailed);
}

/** What a person can do about a failed call, by its code (the message says the rest). */
function hintFor(code: Code): string {
  switch (code) {
    case Code.Unauthenticated:
    case Code.PermissionDenied:
      return "set QUARTET_CLUSTER_TOKEN or QUARTET_CLUSTER_TOKEN_FILE";
    case Code.InvalidArgument:
      return "fix the request and retry";
    case Code.DeadlineExceeded:
      return "raise --timeout or check that something answers";
    case Code.NotFound:
    case Code.AlreadyExists:
    case Code.FailedPrecondition:
    case Code.OutOfRange:
      return "the message says what to change";
    case Code.Unavailable:
    case Code.Aborted:
      return "retry in a moment";
    default:
      return "see the service's logs";
  }
}

function isUnreachable(err: ConnectError): boolean {
  if (err.code !== Code.Unavailable && err.code !== Code.Unknown && err.code !== Code.Internal)
    return false;
  const text = `${err.rawMessage} ${String((err.cause as Error | undefined)?.message ?? "")}`;
  return /ECONNREFUSED|ENOTFOUND|EHOSTUNREACH|ECONNRESET|connect|socket hang up|ETIMEDOUT/i.test(
    text,
  );
}

/** Prints the one-line error (`quartet: <what> (<code>): <what to do>`) and exits. */
export function fail(e: unknown, target: string): never {
  const err = toCliError(e, target);
  process.stderr.write(`quartet: ${err.what} (${err.code}): ${err.hint}\n`);
  process.exit(err.exitCode);
}

/** One JSON value per line on stdout. */
export function printJson(value: unknown): void {
  process.stdout.write(
    `${JSON.stringify(value, (_k, v) => (typeof v === "bigint" ? v.toString() : v))}\n`,
  );
}

/** A response as proto JSON on one line, every field present (bytes base64, int64 strings). */
export function printProto<Desc extends DescMessage>(
  schema: Desc,
  message: MessageShape<Desc>,
): void {
  printJson(toJson(schema, message, { alwaysEmitImplicit: true }));
}

/** A padded table; the header is bold on a TTY. */
export function printTable(header: string[], rows: string[][]): void {
  const widths = header.map((h, i) =>
    Math.max(stripAnsi(h).length, ...rows.map((r) => stripAnsi(r[i] ?? "").length)),
  );
  const line = (cells: string[]) =>
    cells
      .map((c, i) => c + " ".repeat(widths[i] - stripAnsi(c).length))
      .join("  ")
      .trimEnd();
  process.stdout.write(`${colour.bold(line(header))}\n`);
  for (const row of rows) process.stdout.write(`${line(row)}\n`);
}

function stripAnsi(s: string): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: ANSI escapes
  return s.replace(/\x1b\[[0-9;]*m/g, "");
}

/** Progress for long operations: stderr, and only on a TTY. */
export function progress(text: string): void {
  if (process.stderr.isTTY) process.stderr.write(`${colour.dim(text)}\n`);
}
