import type { Logger } from "./logger.ts";

/** How often each kind of refusal is logged at most; the lines between are counted. */
const everyMs = 10_000;

/**
 * Logs refusals without letting an attack flood the log: the first of each kind is logged,
 * then at most one per 10 s carrying how many were not logged in between.
 */
export function createLimitLog(logger: Logger | undefined) {
  const kinds = new Map<string, { at: number; suppressed: number }>();
  return (kind: string, fields: Record<string, unknown>, message: string) => {
    if (!logger) return;
    const now = performance.now();
    const seen = kinds.get(kind);
    if (seen && now - seen.at < everyMs) {
      seen.suppressed++;
      return;
    }
    logger.warn({ limit: kind, ...fields, suppressed: seen?.suppressed ?? 0 }, message);
    kinds.set(kind, { at: now, suppressed: 0 });
  };
}

export type LimitLog = ReturnType<typeof createLimitLog>;
