import { z } from "zod";

/** Every registry key starts with this; one key per (service, instance). */
export const registryPrefix = "/registry/";

/** What one instance announces for one service it serves (the key's JSON value). */
export interface Instance {
  /** Fully qualified proto service name, e.g. quartet.worker.v1.WorkerService. */
  service: string;
  /** Unique per running process; the last segment of the key. */
  instanceId: string;
  /** Base URL callers use, e.g. http://10.0.0.5:7201. */
  address: string;
  /** Protocols served on `address`. */
  protocols: string[];
  /** Free-form placement label (e.g. a zone name); "" when not given. */
  zone: string;
  /** Relative capacity, an integer >= 1. */
  weight: number;
  /** Version of the software serving. */
  version: string;
}

const instanceSchema = z.object({
  service: z.string().min(1),
  instanceId: z.string().min(1),
  address: z.url(),
  protocols: z.array(z.string()),
  zone: z.string(),
  weight: z.number().int().min(1),
  version: z.string(),
});

/** `/registry/<service>/<instanceId>`. */
export function instanceKey(service: string, instanceId: string): string {
  return `${registryPrefix}${service}/${instanceId}`;
}

/** The prefix of one service's keys, or of every service's without a name. */
export function servicePrefix(service?: string): string {
  return service ? `${registryPrefix}${service}/` : registryPrefix;
}

/** The exclusive end of the key range starting with `prefix` (etcd's prefix end). */
export function prefixEnd(prefix: Uint8Array): Uint8Array {
  const end = prefix.slice();
  for (let i = end.length - 1; i >= 0; i--) {
    if (end[i]! < 0xff) {
      end[i]!++;
      return end.slice(0, i + 1);
    }
  }
  return new Uint8Array([0]);
}

/** Parses a registry value; undefined (not an exception) for a value that is not an instance. */
export function parseInstance(value: Uint8Array): Instance | undefined {
  try {
    const parsed = instanceSchema.safeParse(JSON.parse(new TextDecoder().decode(value)));
    return parsed.success ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}

export function encodeInstance(instance: Instance): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(instance));
}
