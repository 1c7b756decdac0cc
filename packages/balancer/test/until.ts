import type { EndpointPool } from "../src/pool.ts";

/** Resolves once `condition` holds, re-checking after every change of the pool. */
export function until(pool: EndpointPool, condition: () => boolean): Promise<void> {
  return new Promise((resolve) => {
    if (condition()) return resolve();
    const stop = pool.onChange(() => {
      if (!condition()) return;
      stop();
      resolve();
    });
  });
}
