import { Code, ConnectError } from "@connectrpc/connect";
import { BrokerError, type BrokerErrorCode } from "@quartet/broker";

/** The bounds the broker enforces per message, per client and per subscription. */
export interface BrokerLimits {
  /** Largest message (payload plus header names and values), in bytes. */
  maxMessageBytes: number;
  /** Subscribe streams open at once per client id (the `quartet-client-id` header). */
  maxSubscriptionsPerClient: number;
  /** Largest `buffer_size` a subscriber may ask for. */
  maxBufferSize: number;
  /** Bytes one subscription's buffer holds while its reader is slow. */
  maxSubscriptionBufferBytes: number;
  /** Bytes all subscriptions of one client id hold together. */
  maxClientBufferBytes: number;
  /** Bytes all subscription buffers of the broker hold together. */
  maxBufferBytes: number;
  /** At most one slow-consumer log line per subscription per this many ms. */
  slowConsumerLogIntervalMs: number;
}

const MiB = 1024 * 1024;

export const defaultBrokerLimits: BrokerLimits = {
  maxMessageBytes: MiB,
  maxSubscriptionsPerClient: 1000,
  maxBufferSize: 65_536,
  maxSubscriptionBufferBytes: 16 * MiB,
  maxClientBufferBytes: 64 * MiB,
  maxBufferBytes: 256 * MiB,
  slowConsumerLogIntervalMs: 10_000,
};

/** Most bytes in one batch of a Subscribe stream (one message always goes, whatever its size). */
export const MAX_SUBSCRIBE_BATCH_BYTES = MiB;

export const MAX_BATCH = 10_000;
export const MAX_HEADERS = 64;
export const MAX_HEADER_NAME = 128;

const codes: Record<BrokerErrorCode, Code> = {
  invalid_argument: Code.InvalidArgument,
  not_found: Code.NotFound,
  already_exists: Code.AlreadyExists,
  failed_precondition: Code.FailedPrecondition,
  resource_exhausted: Code.ResourceExhausted,
  unavailable: Code.Unavailable,
  deadline_exceeded: Code.DeadlineExceeded,
};

/** Maps core errors to their Connect codes; anything else passes through. */
export function toConnectError(e: unknown): unknown {
  if (e instanceof BrokerError) return new ConnectError(e.message, codes[e.code]);
  return e;
}

/** Runs `fn`, turning a BrokerError into the matching ConnectError. */
export async function connectErrors<T>(fn: () => T | Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    throw toConnectError(e);
  }
}

export function invalid(field: string, problem: string): ConnectError {
  return new ConnectError(`${field}: ${problem}`, Code.InvalidArgument);
}

/** Checks a message's headers and total size against the limits. */
export function checkMessage(
  field: string,
  payload: Uint8Array,
  headers: { [name: string]: string },
  limits: BrokerLimits,
): void {
  let bytes = payload.byteLength;
  let count = 0;
  for (const name in headers) {
    count++;
    if (name.length === 0 || name.length > MAX_HEADER_NAME) {
      throw invalid(
        `${field}.headers`,
        `header name ${JSON.stringify(name.slice(0, 40))} must be 1 to ${MAX_HEADER_NAME} characters`,
      );
    }
    bytes += name.length + headers[name]!.length;
  }
  if (count > MAX_HEADERS) {
    throw invalid(`${field}.headers`, `${count} headers is above the limit of ${MAX_HEADERS}`);
  }
  if (bytes > limits.maxMessageBytes) {
    throw new ConnectError(
      `${field}: message is ${bytes} bytes (payload plus headers), above the broker's limit of ${limits.maxMessageBytes}; split it or store it elsewhere and send a reference`,
      Code.ResourceExhausted,
    );
  }
}

/** Checks a batch length: 1 to `max` items. */
export function checkBatch(field: string, length: number, max = MAX_BATCH): void {
  if (length === 0) throw invalid(field, "is empty; send at least one");
  if (length > max) {
    throw new ConnectError(
      `${field}: ${length} items is above the limit of ${max} per call; split the batch`,
      Code.ResourceExhausted,
    );
  }
}
