import { ConnectError } from "@connectrpc/connect";

/** Reads a stream to its end: the error it ended with, or undefined when it ended cleanly. */
export async function streamError(
  stream: AsyncIterable<unknown>,
): Promise<ConnectError | undefined> {
  try {
    for await (const _ of stream) {
    }
    return undefined;
  } catch (e) {
    return ConnectError.from(e);
  }
}
