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
  /** Largest request header block, in bytes, on HTTP/1.1 and HTTP/2 alike. */
  maxHeaderBytes: number;
  /** Connections open at once (503 on HTTP/1.1, GOAWAY ENHANCE_YOUR_CALM on HTTP/2 beyond). */
  maxConnections: number;
  /** Connections open at once from one peer address (refused as above beyond). */
  maxConnectionsPerPeer: number;
  /** Requests in progress on the whole server, arriving or running (Unavailable beyond). */
  maxStreams: number;
  /**
   * Requests whose headers arrived but whose single request message has not arrived in full
   * (unary and server-streaming calls); beyond, the one waiting longest gets ResourceExhausted.
   */
  maxUnfinishedRequests: number;
  /** How long a request may take to arrive in full, headers and body, in ms (DeadlineExceeded). */
  requestArrivalTimeoutMs: number;
  /** How long a connection may stay open with no request in progress, in ms (then closed). */
  idleTimeoutMs: number;
  /** Streams one HTTP/2 connection may reset (RST_STREAM), per 10 s (GOAWAY beyond). */
  maxResetsPerConnection: number;
  /** The same over all connections, per 10 s (the resetting connection gets GOAWAY beyond). */
  maxResets: number;
  /** Bytes of unfinished request bodies held for one connection (ResourceExhausted beyond). */
  maxBufferedBytesPerConnection: number;
  /** Bytes of unfinished request bodies held over all connections (ResourceExhausted beyond). */
  maxBufferedBytes: number;
}

export const defaultLimits: Limits = {
  maxRequestBytes: 4 * 1024 * 1024,
  maxResponseBytes: 16 * 1024 * 1024,
  maxTimeoutMs: 5 * 60 * 1000,
  maxConcurrentStreams: 256,
  maxConcurrentCalls: 4096,
  maxHeaderBytes: 16 * 1024,
  maxConnections: 8192,
  maxConnectionsPerPeer: 1024,
  maxStreams: 8192,
  maxUnfinishedRequests: 1024,
  requestArrivalTimeoutMs: 30_000,
  idleTimeoutMs: 60_000,
  maxResetsPerConnection: 1000,
  maxResets: 10_000,
  maxBufferedBytesPerConnection: 32 * 1024 * 1024,
  maxBufferedBytes: 256 * 1024 * 1024,
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
