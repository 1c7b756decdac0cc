import { logMixin } from "@quartet/telemetry";
import { type Logger, pino } from "pino";

export type { Logger };

/**
 * JSON logs on stdout, one object per line, each carrying trace_id and span_id when written
 * inside a span, so a log line leads to its trace in Jaeger.
 */
export function createLogger(
  name: string,
  level = process.env.QUARTET_LOG_LEVEL ?? "info",
): Logger {
  return pino({
    name,
    level,
    mixin: logMixin,
    // The mixin's object may be shared between lines, so merge into a new one.
    mixinMergeStrategy: (line, mixin) => ({ ...mixin, ...line }),
    base: { service: name, pid: process.pid },
  });
}
