import { hostname } from "node:os";
import type { Server } from "@quartet/server";
import { z } from "zod";
import type { ConnectRegistry } from "./client.ts";
import { type Registration, type RegistryLogger, register } from "./register.ts";

/** Comma-separated consensus member URLs, validated. */
export const consensusUrls = z
  .string()
  .transform((s) =>
    s
      .split(",")
      .map((u) => u.trim())
      .filter(Boolean),
  )
  .pipe(
    z
      .array(
        z.url({
          protocol: /^https?$/,
          error: "each consensus URL must be like http://127.0.0.1:7001",
        }),
      )
      .min(1, "name at least one consensus member URL"),
  );

/**
 * The flags (and QUARTET_* env vars) every registering service takes; spread them into a
 * loadConfig() spec beside serverSettings.
 */
export const registrySettings = {
  registry: {
    schema: consensusUrls.optional(),
    help: "Consensus member URLs (comma-separated); with it this instance registers its services in the registry there.",
    example: "http://127.0.0.1:7001,http://127.0.0.1:7002,http://127.0.0.1:7003",
  },
  advertiseUrl: {
    schema: z.url({ protocol: /^https?$/ }).optional(),
    help: "Base URL others reach this instance at (default: the listen URL, with this host's name when listening on all addresses).",
  },
  zone: {
    schema: z.string().default(""),
    help: "Placement label registered with the endpoint (e.g. a zone name).",
  },
  weight: {
    schema: z.coerce.number().int().min(1).max(1_000_000).default(1),
    help: "Relative capacity registered with the endpoint.",
  },
  registryTtlS: {
    schema: z.coerce.number().int().min(1).max(3600).default(10),
    help: "Lease TTL in seconds: a killed instance leaves the registry within this long.",
  },
};

export interface RegistryConfig {
  registry?: string[] | undefined;
  advertiseUrl?: string | undefined;
  zone: string;
  weight: number;
  registryTtlS: number;
}

/**
 * The URL to advertise for a server listening at `listenUrl`: an unspecified address
 * (0.0.0.0, ::) cannot be called, so this host's name stands in for it.
 */
export function advertisedUrl(listenUrl: string, advertise?: string): string {
  if (advertise) return advertise.replace(/\/+$/, "");
  const url = new URL(listenUrl);
  if (url.hostname === "0.0.0.0" || url.hostname === "[::]") url.hostname = hostname();
  return url.origin;
}

/** The proto services a server serves, without the standard health and reflection ones. */
export function servedServices(server: Pick<Server, "health">): string[] {
  return [...server.health.names()].filter((n) => n !== "" && !n.startsWith("grpc."));
}

export interface RegisterServerOptions {
  config: RegistryConfig;
  /** Makes the consensus client, e.g. `(endpoints) => new ConsensusClient({ endpoints })`. */
  connect: ConnectRegistry;
  server: Pick<Server, "url" | "health">;
  logger: RegistryLogger;
  /** Default: every service the server serves (servedServices). */
  services?: readonly string[];
  instanceId?: string;
  version?: string;
}

/**
 * Registers a listening server from its flags; undefined without --registry. Call it after
 * serve() resolves (the server is listening and SERVING then).
 */
export function registerServer(options: RegisterServerOptions): Registration | undefined {
  const { config } = options;
  if (!config.registry) return undefined;
  return register({
    client: options.connect(config.registry),
    services: options.services ?? servedServices(options.server),
    address: advertisedUrl(options.server.url, config.advertiseUrl),
    zone: config.zone,
    weight: config.weight,
    ttlSeconds: config.registryTtlS,
    logger: options.logger,
    ...(options.instanceId ? { instanceId: options.instanceId } : {}),
    ...(options.version ? { version: options.version } : {}),
  });
}

/**
 * Like Server.closeOnSignals(), but deregisters first: balancers watching the registry stop
 * sending new calls, then the server drains the calls it has.
 */
export function closeOnSignals(
  server: Pick<Server, "close" | "closeOnSignals" | "logger">,
  registration: Registration | undefined,
): void {
  if (!registration) {
    server.closeOnSignals();
    return;
  }
  const onSignal = (signal: NodeJS.Signals) => {
    server.logger.info({ signal }, "signal received: deregistering, then draining");
    registration
      .close()
      .then(() => server.close())
      .then(
        () => process.exit(0),
        (e: unknown) => {
          server.logger.error({ err: e }, "shutdown failed");
          process.exit(1);
        },
      );
  };
  process.once("SIGTERM", onSignal);
  process.once("SIGINT", onSignal);
}
