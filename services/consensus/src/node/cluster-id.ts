import {
  closeSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  writeSync,
} from "node:fs";
import { join } from "node:path";

const fileName = "cluster-id";

/**
 * The cluster id this data directory belongs to, once a member has started on it. The id is
 * derived from the founders' --peers (or learnt when joining) only the first time: after a
 * membership change --peers lists other members, and deriving it again would give another id.
 */
export function savedClusterId(dataDir: string): bigint | undefined {
  let text: string;
  try {
    text = readFileSync(join(dataDir, fileName), "utf8");
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw e;
  }
  if (!/^\d+\n?$/.test(text)) {
    throw new Error(`${join(dataDir, fileName)} is damaged (${JSON.stringify(text.slice(0, 40))})`);
  }
  return BigInt(text.trim());
}

/** Records the cluster id (written whole and fsync'd, then renamed into place). */
export function saveClusterId(dataDir: string, id: bigint): void {
  mkdirSync(dataDir, { recursive: true });
  const path = join(dataDir, fileName);
  const fd = openSync(`${path}.tmp`, "w");
  try {
    writeSync(fd, `${id}\n`);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(`${path}.tmp`, path);
}
