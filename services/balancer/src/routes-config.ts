import { readFileSync } from "node:fs";
import { type PickerKind, pickerKinds, staticResolver } from "@quartet/balancer";
import { ConfigError } from "@quartet/server";
import { z } from "zod";
import type { RouteConfig } from "./route.ts";

export interface RouteDefaults {
  picker: PickerKind;
  hashHeader?: string;
  timeoutMs: number;
}

const serviceName = z
  .string()
  .regex(
    /^[A-Za-z_][\w.]*\.[A-Za-z_]\w*$/,
    "a fully qualified service name like quartet.worker.v1.WorkerService",
  );

const fileSchema = z.array(
  z
    .object({
      service: serviceName,
      endpoints: z.array(z.url()).min(1),
      picker: z.enum(pickerKinds as [PickerKind, ...PickerKind[]]).optional(),
      hashHeader: z.string().min(1).optional(),
      timeoutMs: z.number().int().min(1).optional(),
      healthCheck: z.boolean().optional(),
    })
    .strict(),
);

/**
 * Routes from `--route "svc=url,url;svc2=url"` and from a JSON file
 * (`[{"service", "endpoints", "picker"?, "hashHeader"?, "timeoutMs"?}]`). Both are static
 * endpoint lists, and they win over routes discovered in the registry (discovery.ts).
 */
export function parseRoutes(
  flag: string | undefined,
  file: string | undefined,
  defaults: RouteDefaults,
): RouteConfig[] {
  const routes: RouteConfig[] = [];
  for (const entry of (flag ?? "")
    .split(";")
    .map((s) => s.trim())
    .filter(Boolean)) {
    const eq = entry.indexOf("=");
    const service = entry.slice(0, eq).trim();
    const urls = entry
      .slice(eq + 1)
      .split(",")
      .map((s) => s.trim())
      .filter(Boolean);
    if (eq < 0 || !serviceName.safeParse(service).success || urls.length === 0)
      throw new ConfigError(
        `--route: "${entry}" is not service=url[,url...], e.g. quartet.worker.v1.WorkerService=http://127.0.0.1:7201`,
      );
    for (const u of urls)
      if (!URL.canParse(u) || !u.startsWith("http"))
        throw new ConfigError(`--route ${service}: "${u}" is not a URL like http://127.0.0.1:7201`);
    routes.push({ service, resolver: staticResolver(urls), ...defaults });
  }
  if (file) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(readFileSync(file, "utf8"));
    } catch (e) {
      throw new ConfigError(`--routes-file ${file}: ${(e as Error).message}`);
    }
    const result = fileSchema.safeParse(parsed);
    if (!result.success) {
      const issue = result.error.issues[0]!;
      throw new ConfigError(
        `--routes-file ${file}: at ${issue.path.join(".") || "top"}: ${issue.message}`,
      );
    }
    for (const r of result.data) {
      routes.push({
        service: r.service,
        resolver: staticResolver(r.endpoints),
        picker: r.picker ?? defaults.picker,
        timeoutMs: r.timeoutMs ?? defaults.timeoutMs,
        ...((r.hashHeader ?? defaults.hashHeader)
          ? { hashHeader: r.hashHeader ?? defaults.hashHeader }
          : {}),
        ...(r.healthCheck !== undefined ? { healthCheck: r.healthCheck } : {}),
      });
    }
  }
  const seen = new Set<string>();
  for (const r of routes) {
    if (seen.has(r.service)) throw new ConfigError(`route for ${r.service} given twice`);
    seen.add(r.service);
  }
  return routes;
}
