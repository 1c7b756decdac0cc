import { Code, ConnectError } from "@connectrpc/connect";
import type { CircuitBreaker } from "../src/index.ts";

export const ok = (): Promise<string> => Promise.resolve("ok");

export const failWith =
  (code: Code = Code.Unavailable) =>
  (): Promise<string> =>
    Promise.reject(new ConnectError("down", code));

/** Runs `n` calls one after another and returns their settled results. */
export async function run(
  breaker: CircuitBreaker,
  n: number,
  fn: () => Promise<string>,
): Promise<PromiseSettledResult<string>[]> {
  const results: PromiseSettledResult<string>[] = [];
  for (let i = 0; i < n; i++) {
    results.push(
      await breaker.execute(fn).then(
        (value) => ({ status: "fulfilled", value }) as const,
        (reason: unknown) => ({ status: "rejected", reason }) as const,
      ),
    );
  }
  return results;
}

/** A promise settled from outside, to hold calls in flight while the test moves the breaker. */
export interface Deferred<T> {
  promise: Promise<T>;
  resolve(value: T): void;
  reject(error: unknown): void;
}

export function deferred<T>(): Deferred<T> {
  let resolve!: (value: T) => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}
