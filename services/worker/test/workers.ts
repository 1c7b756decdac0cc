import { fileURLToPath } from "node:url";
import {
  type ServiceProcess,
  type StartOptions,
  startServiceProcess,
} from "@quartet/server/testing";

export const workerEntry = fileURLToPath(new URL("../src/main.ts", import.meta.url));

/** Starts a real worker process on a free loopback port. */
export function startWorker(
  id: string,
  args: string[] = [],
  options: StartOptions = {},
): Promise<ServiceProcess> {
  return startServiceProcess(workerEntry, ["--port", "0", "--id", id, ...args], options);
}
