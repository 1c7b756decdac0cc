/** The chunks of a body already read, as the async iterable connect reads a body from. */
export function readBody(chunks: readonly Uint8Array[]): AsyncIterable<Uint8Array> {
  return {
    [Symbol.asyncIterator]() {
      let i = 0;
      return {
        next: () =>
          Promise.resolve(
            i < chunks.length
              ? { done: false as const, value: chunks[i++]! }
              : { done: true as const, value: undefined },
          ),
        return: () => {
          i = chunks.length;
          return Promise.resolve({ done: true as const, value: undefined });
        },
      };
    },
  };
}
