import { parseArgs } from "node:util";
import { z } from "zod";
import { secretFlagMessage } from "./cluster-token.ts";
import { defaultLimits } from "./limits.ts";

/** One setting: a flag `--kebab-name` and an env var `QUARTET_SNAKE_NAME`, validated by zod. */
export interface Setting<T> {
  schema: z.ZodType<T>;
  help: string;
  /** Shown in --help; the schema supplies the value itself. */
  example?: string;
  /** A secret: from the environment only, never a flag, and never shown in messages. */
  secret?: boolean;
}

export type Settings = Record<string, Setting<unknown>>;
export type ConfigOf<S extends Settings> = {
  [K in keyof S]: S[K] extends Setting<infer T> ? T : never;
};

export interface ConfigSpec<S extends Settings> {
  /** Binary name, e.g. "quartet-worker". */
  name: string;
  summary: string;
  settings: S;
}

export class ConfigError extends Error {}

const kebab = (key: string) => key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
const envName = (key: string) => `QUARTET_${key.replace(/[A-Z]/g, (c) => `_${c}`).toUpperCase()}`;

/**
 * Reads settings from flags, then `QUARTET_*` env vars, then schema defaults; `--help` prints
 * every setting and exits. Throws ConfigError naming the setting when a value is invalid.
 */
export function parseConfig<S extends Settings>(
  spec: ConfigSpec<S>,
  argv: string[] = process.argv.slice(2),
  env: NodeJS.ProcessEnv = process.env,
): ConfigOf<S> {
  const options: Record<string, { type: "string" | "boolean" }> = { help: { type: "boolean" } };
  for (const [key, setting] of Object.entries(spec.settings)) {
    const flag = `--${kebab(key)}`;
    if (!setting.secret) options[kebab(key)] = { type: "string" };
    else if (argv.some((arg) => arg === flag || arg.startsWith(`${flag}=`))) {
      throw new ConfigError(secretFlagMessage(flag, envName(key)));
    }
  }
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({ args: argv, options, strict: true, allowPositionals: false });
  } catch (e) {
    throw new ConfigError(`${(e as Error).message}\nRun with --help to list the settings.`);
  }
  if (parsed.values.help) {
    process.stdout.write(helpText(spec));
    process.exit(0);
  }
  const result: Record<string, unknown> = {};
  for (const [key, setting] of Object.entries(spec.settings)) {
    const raw = setting.secret
      ? env[envName(key)]
      : ((parsed.values[kebab(key)] as string | undefined) ?? env[envName(key)]);
    const checked = setting.schema.safeParse(raw);
    if (!checked.success) {
      const why = checked.error.issues.map((i) => i.message).join("; ");
      throw new ConfigError(
        setting.secret
          ? `invalid ${envName(key)}: ${why}`
          : `invalid --${kebab(key)} / ${envName(key)} (${JSON.stringify(raw)}): ${why}`,
      );
    }
    result[key] = checked.data;
  }
  return result as ConfigOf<S>;
}

/** Like parseConfig, but prints the problem and exits with code 2, as a binary should. */
export function loadConfig<S extends Settings>(spec: ConfigSpec<S>): ConfigOf<S> {
  try {
    return parseConfig(spec);
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    process.stderr.write(`${spec.name}: ${e.message}\n`);
    process.exit(2);
  }
}

function helpText<S extends Settings>(spec: ConfigSpec<S>): string {
  const lines = [
    `${spec.name}: ${spec.summary}`,
    "",
    "Settings (flag, environment variable, default):",
  ];
  for (const [key, setting] of Object.entries(spec.settings)) {
    const fallback = setting.schema.safeParse(undefined);
    const shown =
      fallback.success && fallback.data !== undefined
        ? ` (default ${JSON.stringify(fallback.data)})`
        : "";
    const names = setting.secret ? envName(key) : `--${kebab(key)}, ${envName(key)}`;
    lines.push(`  ${names}${shown}`, `      ${setting.help}`);
  }
  lines.push("  --help", "      Print this text and exit.", "");
  return lines.join("\n");
}

const int = (min: number, max: number) => z.coerce.number().int().min(min).max(max);
const list = z.string().transform((s) =>
  s
    .split(",")
    .map((x) => x.trim())
    .filter((x) => x.length > 0),
);

/** The settings every Quartet server shares; spread them into a service's own spec. */
export const serverSettings = {
  host: { schema: z.string().default("127.0.0.1"), help: "Address to listen on." },
  port: { schema: int(0, 65535), help: "TCP port; 0 picks a free one." },
  tlsCert: {
    schema: z.string().optional(),
    help: "PEM certificate file; with --tls-key enables TLS (h2 and http/1.1 by ALPN).",
  },
  tlsKey: { schema: z.string().optional(), help: "PEM private key file for --tls-cert." },
  corsOrigins: {
    schema: list.optional(),
    help: "Comma-separated origins browsers may call from; `*` matches any port, e.g. http://localhost:*. Default: localhost origins.",
  },
  clusterToken: {
    schema: z.string().min(16, "use at least 16 characters").optional(),
    secret: true,
    help: "Shared secret that internal and admin methods require as a bearer token. Environment only (never a flag), or use --cluster-token-file.",
  },
  clusterTokenFile: {
    schema: z.string().optional(),
    help: "File holding the cluster token (instead of QUARTET_CLUSTER_TOKEN); a trailing newline is dropped.",
  },
  maxRequestBytes: {
    schema: int(1, 1 << 30).default(4 * 1024 * 1024),
    help: "Largest request message in bytes.",
  },
  maxTimeoutMs: {
    schema: int(1, 24 * 3600 * 1000).default(300_000),
    help: "Largest deadline a client may ask for; also the deadline of a unary call that asks for none.",
  },
  maxConcurrentStreams: {
    schema: int(1, 1 << 20).default(256),
    help: "HTTP/2 streams per connection.",
  },
  maxConcurrentCalls: {
    schema: int(1, 1 << 20).default(4096),
    help: "Calls in progress on the whole server.",
  },
  maxHeaderBytes: {
    schema: int(1024, 1 << 20).default(defaultLimits.maxHeaderBytes),
    help: "Largest request header block in bytes, on HTTP/1.1 and HTTP/2 alike.",
  },
  maxConnections: {
    schema: int(1, 1 << 20).default(defaultLimits.maxConnections),
    help: "Connections open at once; beyond, new ones are refused (503 / GOAWAY).",
  },
  maxConnectionsPerPeer: {
    schema: int(1, 1 << 20).default(defaultLimits.maxConnectionsPerPeer),
    help: "Connections open at once from one peer address.",
  },
  maxStreams: {
    schema: int(1, 1 << 22).default(defaultLimits.maxStreams),
    help: "Requests in progress over all connections, arriving or running; beyond, Unavailable.",
  },
  maxUnfinishedRequests: {
    schema: int(1, 1 << 22).default(defaultLimits.maxUnfinishedRequests),
    help: "Unary and server-streaming requests still arriving at once; beyond, the oldest is dropped.",
  },
  requestArrivalTimeoutMs: {
    schema: int(1, 3600 * 1000).default(defaultLimits.requestArrivalTimeoutMs),
    help: "How long a request may take to arrive in full (headers, and the body of unary and server-streaming calls).",
  },
  idleTimeoutMs: {
    schema: int(1, 24 * 3600 * 1000).default(defaultLimits.idleTimeoutMs),
    help: "How long a connection may stay open with no request in progress.",
  },
  maxResetsPerConnection: {
    schema: int(1, 1 << 24).default(defaultLimits.maxResetsPerConnection),
    help: "HTTP/2 streams one connection may reset (RST_STREAM), per 10 s; beyond, GOAWAY.",
  },
  maxResets: {
    schema: int(1, 1 << 24).default(defaultLimits.maxResets),
    help: "The same over all connections, per 10 s.",
  },
  maxBufferedBytesPerConnection: {
    schema: int(1, 1 << 30).default(defaultLimits.maxBufferedBytesPerConnection),
    help: "Bytes of request bodies still arriving held for one connection.",
  },
  maxBufferedBytes: {
    schema: int(1, 1 << 30).default(defaultLimits.maxBufferedBytes),
    help: "Bytes of request bodies still arriving held over all connections.",
  },
  compressMinBytes: {
    schema: int(0, 1 << 30).optional(),
    help: "Compress response messages of at least this many bytes for clients that accept gzip or br. Default: responses are not compressed (compressed requests are accepted either way).",
  },
  drainTimeoutMs: {
    schema: int(0, 600_000).default(10_000),
    help: "On SIGTERM, how long in-flight calls may take to finish.",
  },
} satisfies Settings;
