import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";

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

/** Refuses a call when the server already has `max` calls in progress. */
export function createConcurrencyLimit(max: number): Interceptor {
  let active = 0;
  const release = () => {
    active--;
  };
  // Shared continuations: no closure is allocated per call on this hot path.
  const onResponse = <R extends { stream: boolean }>(res: R): R => {
    if (!res.stream) {
      active--;
      return res;
    }
    const stream = res as R & { message: AsyncIterable<unknown> };
    return { ...stream, message: releaseWhenDone(stream.message, release) };
  };
  const onError = (e: unknown): never => {
    active--;
    throw e;
  };
  return (next) => (req) => {
    if (active >= max) {
      return Promise.reject(
        new ConnectError(
          `server is at its limit of ${max} concurrent calls; retry with backoff`,
          Code.ResourceExhausted,
        ),
      );
    }
    active++;
    let pending: ReturnType<typeof next>;
    try {
      pending = next(req);
    } catch (e) {
      return onError(e);
    }
    return pending.then(onResponse, onError);
  };
}

async function* releaseWhenDone<T>(
  messages: AsyncIterable<T>,
  release: () => void,
): AsyncIterable<T> {
  try {
    yield* messages;
  } finally {
    release();
  }
}
