import { Code, ConnectError } from "@connectrpc/connect";
import type { CallAdmission } from "@quartet/telemetry";

/** The bounds every server enforces; each breach gets its own clear error. */
export interface Limits {
  /** Largest request message, in bytes (ResourceExhausted beyond). */
  maxRequestBytes: number;
  /** Largest response message, in bytes. */
  maxResponseBytes: number;
  /** Largest timeout a client may ask for, in ms (InvalidArgument beyond). */
  maxTimeoutMs: number;
  /** HTTP/2 streams per connection (the client is told in SETTINGS). */
  maxConcurrentStreams: number;
  /** Calls in progress on the whole server (ResourceExhausted beyond). */
  maxConcurrentCalls: number;
  /** Largest request header block, in bytes. */
  maxHeaderBytes: number;
}

export const defaultLimits: Limits = {
  maxRequestBytes: 4 * 1024 * 1024,
  maxResponseBytes: 16 * 1024 * 1024,
  maxTimeoutMs: 5 * 60 * 1000,
  maxConcurrentStreams: 256,
  maxConcurrentCalls: 4096,
  maxHeaderBytes: 16 * 1024,
};

/**
 * Refuses a call when the server already has `max` calls in progress. A call holds its
 * place until its response is sent, or, for a streaming response, until the stream ends.
 */
export function createConcurrencyLimit(max: number): CallAdmission {
  let active = 0;
  return {
    admit() {
      if (active >= max) {
        throw new ConnectError(
          `server is at its limit of ${max} concurrent calls; retry with backoff`,
          Code.ResourceExhausted,
        );
      }
      active++;
    },
    release() {
      active--;
    },
  };
}
