import { closeSync, existsSync, fsyncSync, openSync, writeSync } from "node:fs";
import { join } from "node:path";

const fileName = "removed";

/**
 * Whether the member of this data directory was removed from its cluster. The mark is needed
 * beside the log: a member may learn of its removal from a peer that refuses its messages,
 * without ever holding the committed change itself.
 */
export function wasMarkedRemoved(dataDir: string): boolean {
  return existsSync(join(dataDir, fileName));
}

/** Marks this data directory's member as removed, durably (it must never serve again). */
export function markRemoved(dataDir: string, why: string): void {
  const fd = openSync(join(dataDir, fileName), "w");
  try {
    writeSync(fd, `${new Date().toISOString()} ${why}\n`);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}
