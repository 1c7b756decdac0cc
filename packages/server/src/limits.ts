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
  return (next) => async (req) => {
    if (active >= max) {
      throw new ConnectError(
        `server is at its limit of ${max} concurrent calls; retry with backoff`,
        Code.ResourceExhausted,
      );
    }
    active++;
    let res: Awaited<ReturnType<typeof next>>;
    try {
      res = await next(req);
    } catch (e) {
      release();
      throw e;
    }
    if (!res.stream) {
      release();
      return res;
    }
    return { ...res, message: releaseWhenDone(res.message, release) };
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
